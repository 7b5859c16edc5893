#!/usr/bin/env python3
"""Markdown table of a JMH result file (benchmarks/run.sh ... -rf json -rff FILE): one row per
benchmark and parameter set, with p50 / p99 / mean in the benchmark's unit, and the ratio of p50 to
the baseline measured in the same run: the first row of the same benchmark that differs only in the
last parameter that varies (e.g. method=bm25 for ShardQueryBench, per catalog).

usage: benchmarks/summary.py RESULT.json
"""
import json
import sys


def main(argv):
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8") as f:
            runs = json.load(f)
    except (OSError, ValueError) as e:
        print(f"summary: cannot read {argv[0]}: {e}", file=sys.stderr)
        return 2
    # parameters that vary within a benchmark name are the ones worth a column
    varying = {}
    for r in runs:
        for k, v in (r.get("params") or {}).items():
            varying.setdefault((r["benchmark"], k), set()).add(v)
    print("| benchmark | parameters | samples | p50 | p99 | mean | unit | p50 / baseline |")
    print("|---|---|---|---|---|---|---|---|")
    baselines = {}
    for r in runs:
        name = r["benchmark"].rsplit(".", 2)[-2] + "." + r["benchmark"].rsplit(".", 1)[-1]
        shown = [(k, v) for k, v in (r.get("params") or {}).items() if len(varying[(r["benchmark"], k)]) > 1]
        m = r["primaryMetric"]
        pct = m.get("scorePercentiles", {})
        p50 = pct.get("50.0", m["score"])
        base = baselines.setdefault((r["benchmark"], tuple(shown[:-1])), p50)
        samples = sum(c for fork in m.get("rawDataHistogram", []) for it in fork for _, c in it)
        params = ", ".join(f"{k}={v}" for k, v in shown)
        print(f"| {name} | {params} | {samples or ''} | {p50:.3f} | {pct.get('99.0', float('nan')):.3f} | {m['score']:.3f} | "
              f"{m['scoreUnit']} | {p50 / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
