#!/usr/bin/env python3
"""Reads `jfr print --json --events jdk.ExecutionSample` on stdin; prints where the CPU samples are:
the top frames (self) and the methods on the stack (total), as shares of all samples, plus the
share per thread pool. Used by bench.sh --jfr."""
import collections
import json
import re
import sys


def frame_name(f):
    m = f.get("method", {})
    t = m.get("type", {}).get("name", "?")
    return f"{t.replace('/', '.')}.{m.get('name', '?')}"


def main():
    events = json.load(sys.stdin)["recording"]["events"]
    self_counts, total_counts, pools = collections.Counter(), collections.Counter(), collections.Counter()
    for e in events:
        frames = e["values"].get("stackTrace", {}).get("frames", []) if e["values"].get("stackTrace") else []
        thread = (e["values"].get("sampledThread") or {}).get("javaName") or "?"
        pools[re.sub(r"\[T#\d+\]|#\d+|-\d+$", "", thread)] += 1
        if not frames:
            continue
        self_counts[frame_name(frames[0])] += 1
        for name in {frame_name(f) for f in frames}:
            total_counts[name] += 1
    n = max(1, len(events))
    print(f"{len(events)} CPU samples")
    print("\nby thread pool:")
    for k, v in pools.most_common(12):
        print(f"  {100 * v / n:5.1f}%  {k}")
    print("\ntop frames (self):")
    for k, v in self_counts.most_common(30):
        print(f"  {100 * v / n:5.1f}%  {k}")
    print("\non the stack (total), org.opensearch.mach and Lucene/ONNX entry points:")
    for k, v in total_counts.most_common(400):
        if any(s in k for s in ("org.opensearch.mach.", "ai.onnxruntime.", "IndexSearcher.search", "RestController.dispatch")):
            print(f"  {100 * v / n:5.1f}%  {k}")


if __name__ == "__main__":
    main()
