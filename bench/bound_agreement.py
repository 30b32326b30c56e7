#!/usr/bin/env python3
"""bench/bound_agreement.py - how often two routers that share nothing split a new prefix between
two instances because of cache_aware's content bound, and what balance the bound keeps, for a
fixed threshold and for one drawn per prefix (dataplane/policy/cache_aware.c, bounds()).

A model, not the router: each trial draws a rendezvous weight per (prefix, instance), a prompt
length per prefix (250 to 300 units) and the prefix's own u in [0, 1). Two routers place every
prefix once, each in its own order, by the highest weight among the instances whose content sent
is within the bound:
    bound = max(1.1 x cmean, cmean + s x sqrt(cmean x units)),  cmean = (content + units) / n
where s is the threshold in standard deviations: fixed, or lo + (hi - lo) x u. Loads are left out
(idle or equal candidates), as in tests/integration/test_cache_aware.py's two-router test, whose
order is the first shape: router A sees the even prefixes then the odd ones, B the reverse. The
second shape is routing_quality's: 16 prefixes on 4 instances, each router in a random order.

Columns: mean prefixes split, P(more than 0, 3, 6 split), and the busiest instance's homed
prefixes / the mean (both routers' placements averaged): the balance the bound buys.

  bench/bound_agreement.py [--trials N] [--seed S]
"""
import argparse
import math
import random

VARIANTS = [("fixed", 1.5, 1.5), ("fixed", 2.0, 2.0), ("fixed", 2.5, 2.5), ("drawn", 1.0, 3.0)]
SHAPES = [(3, 24, "alternate"), (4, 16, "random")]


def orders(rng, groups, shape):
    if shape == "alternate":
        evens, odds = list(range(0, groups, 2)), list(range(1, groups, 2))
        return evens + odds, odds + evens
    a, b = list(range(groups)), list(range(groups))
    rng.shuffle(a)
    rng.shuffle(b)
    return a, b


def place(seq, n, weights, units, s_of):
    content, at = [0.0] * n, {}
    for g in seq:
        cmean = (sum(content) + units[g]) / n
        bound = max(1.1 * cmean, cmean + s_of(g) * math.sqrt(cmean * units[g]))
        ranked = sorted(range(n), key=lambda i: -weights[g][i])
        at[g] = next((i for i in ranked if content[i] <= bound), ranked[0])
        content[at[g]] += units[g]
    return at


def trial_stats(trials, n, groups, shape, variant, seed):
    kind, lo, hi = variant
    rng = random.Random(seed)
    splits, busiest = [], 0.0
    for _ in range(trials):
        weights = [[rng.random() for _ in range(n)] for _ in range(groups)]
        units = [rng.randint(250, 300) for _ in range(groups)]
        u = [rng.random() for _ in range(groups)]

        def s_of(g):
            return lo if kind == "fixed" else lo + (hi - lo) * u[g]

        placed = [place(seq, n, weights, units, s_of) for seq in orders(rng, groups, shape)]
        splits.append(sum(placed[0][g] != placed[1][g] for g in range(groups)))
        for at in placed:
            homed = [list(at.values()).count(i) for i in range(n)]
            busiest += max(homed) / (groups / n) / 2
    over = lambda k: sum(x > k for x in splits) / trials
    return sum(splits) / trials, over(0), over(3), over(6), busiest / trials


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    print("| threshold (sigmas) | prefixes, instances, orders | mean split | P(>0) | P(>3) | P(>6) | busiest / mean |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for variant in VARIANTS:
        name = "%.1f" % variant[1] if variant[0] == "fixed" else "drawn from [%.1f, %.1f)" % variant[1:]
        for n, groups, shape in SHAPES:
            m, p0, p3, p6, busy = trial_stats(args.trials, n, groups, shape, variant, args.seed)
            print("| %s | %d on %d, %s | %.3f | %.4f | %.5f | %.6f | %.3f |" % (name, groups, n, shape, m, p0, p3, p6, busy),
                  flush=True)


if __name__ == "__main__":
    main()
