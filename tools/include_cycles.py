#!/usr/bin/env python3
"""tools/include_cycles.py - file circles in the include graph of some directories.

    tools/include_cycles.py [--root DIR] dataplane controlplane

(DIR: the source tree, by default the one this script is in; tests/lint/include_cycles.sh runs it.)

A file depends on the headers it includes (only those inside the directories given: common/ and
shm/ are lower layers), and a header depends on the .c files that define what it declares (a
function or object named in the header and defined at file scope, not static, in a .c of the
same directories): including select.h means using select.c. A circle is a set of files each of
which reaches the others that way; a header with its own .c is not one. Prints every circle
(its .c files) and exits 1 if there is one, 0 if there is none. docs/architecture.md says which
circles are allowed and why (there are none today).
"""
import collections
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # --root changes it
# a file-scope definition: a line at column 0 that is not static, a type or a directive, whose
# first name followed by "(", "=", "[" or ";" is the name defined
DEF = re.compile(r"^(?!static\b|typedef\b|extern\b|struct\b|union\b|enum\b|#)[A-Za-z_][\w \t\*]*?"
                 r"\b([A-Za-z_]\w*)\s*[\(=\[;]", re.M)


def strip(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', re.sub(r'#include\s+"', '#include "', text))


def sources(dirs):
    out = {}
    for d in dirs:
        for base, _, names in os.walk(os.path.join(ROOT, d)):
            for n in names:
                if n.endswith((".c", ".h")):
                    path = os.path.relpath(os.path.join(base, n), ROOT)
                    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                        out[path] = f.read()
    return out


def graph(files):
    edges = collections.defaultdict(set)
    defined = {p: set(DEF.findall(strip(t))) for p, t in files.items() if p.endswith(".c")}
    for path, text in files.items():
        for inc in re.findall(r'#include\s+"([^"]+)"', text):
            if inc in files and inc != path:
                edges[path].add(inc)
        if path.endswith(".h"):
            names = set(re.findall(r"\b[A-Za-z_]\w*\b", strip(text)))
            for c, defs in defined.items():
                if names & defs:
                    edges[path].add(c)
    return edges


def circles(nodes, edges):
    """Tarjan's strongly connected components of more than one .c file."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            cs = sorted(x for x in comp if x.endswith(".c"))
            if len(cs) > 1:
                out.append(cs)

    sys.setrecursionlimit(100000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    global ROOT
    args = sys.argv[1:]
    if args[:1] == ["--root"] and len(args) > 1:
        ROOT, args = os.path.abspath(args[1]), args[2:]
    dirs = args or ["dataplane", "controlplane"]
    missing = [d for d in dirs if not os.path.isdir(os.path.join(ROOT, d))]
    if missing:
        print(f"include_cycles: no {', '.join(missing)} under {ROOT}", file=sys.stderr)
        return 2
    files = sources(dirs)
    found = circles(files, graph(files))
    for c in found:
        print(f"circle of {len(c)} files: {' '.join(c)}")
    if not found:
        print(f"no include circle in {', '.join(dirs)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
