"""tools/loadgen/workload.py - the load generator's workloads, generated from a seed.

A workload is a list of jobs. A job is a generator of request bodies: it yields a body, is sent the
answer's text, and yields the next body, so a multi-turn chat can put each real answer into its
history. Single-request jobs yield once. Each job carries `group`: the prefix group it belongs to
(shared-prefix, hot-prefix: the group's index, the hot group is 0; chat: the user; unique: its own
index), so a benchmark can tell from the per-request trace where each group's requests went.

Prompts are made of pseudo-words ("qavo", "lem", ...) drawn from a seeded random.Random: fd-sim
counts whitespace-separated words as tokens and fd-router's cache_aware hashes characters, so
sharing is exactly what the workload says it is (a shared prefix is the same words, in the same
order) and nothing is shared by accident.
"""

import random

SYLLABLES = [c + v for c in "bcdfghjklmnpqrstvwxz" for v in "aeiou"]


class Spec:
    """Workload parameters (the command-line options of the same names)."""

    def __init__(self, **kw):
        self.kind = kw.get("kind", "shared-prefix")
        self.seed = kw.get("seed", 1)
        self.groups = kw.get("groups", 8)
        self.prompts_per_group = kw.get("prompts_per_group", 16)
        self.prefix_len = kw.get("prefix_len", 512)
        self.suffix_len = kw.get("suffix_len", 32)
        self.hot_prefix_len = kw.get("hot_prefix_len", 512)
        self.hot_suffix_len = kw.get("hot_suffix_len", 256)
        self.users = kw.get("users", 16)
        self.rounds = kw.get("rounds", 4)
        self.system_len = kw.get("system_len", 64)
        self.turn_len = kw.get("turn_len", 64)
        self.requests = kw.get("requests", 128)
        self.prompt_len = kw.get("prompt_len", 256)
        self.output_tokens = kw.get("output_tokens", 16)
        self.output_jitter = kw.get("output_jitter", 0.0)
        self.api = kw.get("api", "chat")
        self.stream = kw.get("stream", True)


class _Words:
    def __init__(self, rng):
        self.rng = rng

    def word(self):
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(1, 3)))

    def text(self, n):
        return " ".join(self.word() for _ in range(n))


def _out_tokens(spec, rng):
    """output_tokens, or drawn uniformly within +-output_jitter of it (at least 1)"""
    if spec.output_jitter <= 0:
        return spec.output_tokens
    lo = spec.output_tokens * (1 - spec.output_jitter)
    return max(1, int(round(rng.uniform(lo, spec.output_tokens * (1 + spec.output_jitter)))))


def _body(spec, messages, out_tokens):
    body = {"model": "default", "stream": spec.stream, "max_tokens": out_tokens, "sim_tokens": out_tokens}
    if spec.stream:
        body["stream_options"] = {"include_usage": True}
    if spec.api == "chat":
        body["messages"] = messages
    else:
        body["prompt"] = " ".join(m["content"] for m in messages)
    return body


def _single(spec, group, text, out_tokens):
    def job():
        yield _body(spec, [{"role": "user", "content": text}], out_tokens)

    job.group = group
    return job


def _chat(spec, group, system, first, turns, out_tokens):
    def job():
        messages = [{"role": "system", "content": system}, {"role": "user", "content": first}]
        for turn, out in zip(turns, out_tokens):
            answer = yield _body(spec, list(messages), out)
            messages.append({"role": "assistant", "content": answer or ""})
            messages.append({"role": "user", "content": turn})
        yield _body(spec, messages, out_tokens[-1])

    job.group = group
    return job


def _groups(spec, words, rng, first, groups, per_group, prefix_len, suffix_len):
    """per_group single prompts for each of groups prefix groups (numbered from first)."""
    jobs = []
    for g in range(first, first + groups):
        prefix = words.text(prefix_len)
        for _ in range(per_group):
            jobs.append(_single(spec, g, prefix + " " + words.text(suffix_len), _out_tokens(spec, rng)))
    return jobs


def build(spec):
    """The jobs of the workload, in the order they are issued."""
    rng = random.Random("%s:%d" % (spec.kind, spec.seed))  # workloads of one seed share nothing
    words = _Words(rng)
    jobs = []
    if spec.kind == "shared-prefix":
        jobs = _groups(spec, words, rng, 0, spec.groups, spec.prompts_per_group, spec.prefix_len, spec.suffix_len)
        rng.shuffle(jobs)
    elif spec.kind == "hot-prefix":
        # group 0 is as many prompts as all the cold groups together: half of the requests, in one
        # place unless the router spreads it
        cold = spec.groups * spec.prompts_per_group
        jobs = _groups(spec, words, rng, 0, 1, cold, spec.hot_prefix_len, spec.hot_suffix_len)
        jobs += _groups(spec, words, rng, 1, spec.groups, spec.prompts_per_group, spec.prefix_len, spec.suffix_len)
        rng.shuffle(jobs)
    elif spec.kind == "chat":
        system = words.text(spec.system_len)  # one system prompt for every user, as a deployment has
        for user in range(spec.users):
            first = words.text(spec.turn_len)
            turns = [words.text(spec.turn_len) for _ in range(spec.rounds - 1)]
            jobs.append(_chat(spec, user, system, first, turns, [_out_tokens(spec, rng) for _ in range(spec.rounds)]))
    elif spec.kind == "unique":
        jobs = [_single(spec, i, words.text(spec.prompt_len), _out_tokens(spec, rng)) for i in range(spec.requests)]
    else:
        raise ValueError("unknown workload %r" % spec.kind)
    return jobs


def describe(spec):
    out = "%d output tokens" % spec.output_tokens
    if spec.output_jitter > 0:
        out += " +-%g%%" % (100 * spec.output_jitter)
    if spec.kind == "shared-prefix":
        return ("shared-prefix: %d groups x %d prompts, prefix %d + suffix %d words, %s" %
                (spec.groups, spec.prompts_per_group, spec.prefix_len, spec.suffix_len, out))
    if spec.kind == "hot-prefix":
        return ("hot-prefix: hot group %d prompts, prefix %d + suffix %d words; %d cold groups x %d prompts, "
                "prefix %d + suffix %d words; %s" %
                (spec.groups * spec.prompts_per_group, spec.hot_prefix_len, spec.hot_suffix_len, spec.groups,
                 spec.prompts_per_group, spec.prefix_len, spec.suffix_len, out))
    if spec.kind == "chat":
        return ("chat: %d users x %d rounds, system %d + %d words per turn, %s" %
                (spec.users, spec.rounds, spec.system_len, spec.turn_len, out))
    return "unique: %d prompts of %d words, %s" % (spec.requests, spec.prompt_len, out)


def ideal_hit(spec, block_tokens=16):
    """The fleet hit rate if every prompt found all earlier prompts' blocks in its instance's cache
    (each prefix group always on one instance that still holds it): hit tokens / prompt tokens,
    counted as fd-sim counts them (tools/fd-sim/engine.h): the longest run of the prompt's leading
    full blocks already cached, never the prompt's last token. None for chat, whose prompts
    contain answers not known in advance."""
    if spec.kind == "chat":
        return None
    seen = set()
    hits = total = 0
    for job in build(spec):
        body = next(job())
        text = body.get("prompt") or " ".join(m["content"] for m in body["messages"])
        words = text.split()
        keys, key = [], None
        for k in range(len(words) // block_tokens):
            key = hash((key, tuple(words[k * block_tokens:(k + 1) * block_tokens])))  # chained, as fd-sim's
            keys.append(key)
        reusable = (len(words) - 1) // block_tokens if words else 0
        run = 0
        while run < reusable and keys[run] in seen:
            run += 1
        hits += run * block_tokens
        total += len(words)
        seen.update(keys)
    return hits / total if total else None
