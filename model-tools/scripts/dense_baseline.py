"""The yardstick of encoder models: the pretrained sentence encoder used as a dense retriever, alone
and fused with BM25 the way neural-search users run it (min-max normalized scores, weighted mean).

Exact cosine over the whole catalog (title vectors, the same encoder.onnx and tokenizer as an
encoder bundle, embeddings cached); BM25 from `engine-eval --methods bm25 --rankings FILE` (its top
100 with scores, tie-fair index). Fusion: candidates = BM25's top 100 and the dense top 100, score =
w * mm(bm25) + (1 - w) * mm(cosine), mm over each list's own top 100, a missing side scoring 0.

    cd model-tools && /usr/bin/python3 scripts/dense_baseline.py --rankings R.jsonl \\
        --catalog ../../shared/data/homedepot/products.tsv --judgments ../../shared/data/homedepot/judgments-dev.tsv \\
        --preset homedepot --encoder ../plugin/target/encoders/all-minilm-l6-v2-q --embed-cache /work/cache
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mach_tools import metrics as M  # noqa: E402
from mach_tools.data import judgments_by_query, read_catalog, read_pairs  # noqa: E402
from mach_tools.encoder import SentenceEncoder  # noqa: E402

WEIGHTS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def minmax(scores: dict) -> dict:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    return {p: (s - lo) / (hi - lo) if hi > lo else 1.0 for p, s in scores.items()}


def fuse(bm25: dict, dense: dict, w_bm25: float) -> list:
    b, d = minmax(bm25), minmax(dense)
    cand = set(b) | set(d)
    score = {p: w_bm25 * b.get(p, 0.0) + (1 - w_bm25) * d.get(p, 0.0) for p in cand}
    return sorted(cand, key=lambda p: (-score[p], p))[:100]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rankings", required=True, help="engine-eval --rankings file with a bm25 method")
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--id-field", default="product_id")
    ap.add_argument("--text-fields", help="comma-separated; the first one (the title) is embedded")
    ap.add_argument("--judgments", required=True)
    ap.add_argument("--preset", choices=sorted(M.PRESETS), default="homedepot")
    ap.add_argument("--encoder", required=True, help="encoder directory (encoder.onnx + tokenizer.json)")
    ap.add_argument("--embed-cache")
    ap.add_argument("--out", help="write {method: metrics} JSON here (the shape of engine-eval's results)")
    args = ap.parse_args(argv)
    conv = M.PRESETS[args.preset]
    cat = read_catalog(args.catalog, args.id_field, args.text_fields.split(",") if args.text_fields else None)
    judged = judgments_by_query(read_pairs(args.judgments))
    with open(args.rankings, encoding="utf-8") as f:
        rows = {r["query"]: r["hits"]["bm25"] for r in map(json.loads, f)}
    missing = [q for q in judged if q not in rows]
    if missing:
        sys.exit(f"{args.rankings} lacks {len(missing)} judged queries, e.g. {missing[0]!r}")
    enc = SentenceEncoder.from_dir(args.encoder, cache_dir=args.embed_cache)
    P = enc.embed([next((f for f in fs if f), "") for fs in cat.fields], progress=True, desc="catalog")
    queries = list(judged)
    Q = enc.embed(queries, progress=True, desc="queries")
    runs = {"bm25": [], "dense": [], **{f"minmax w_bm25={w}": [] for w in WEIGHTS}}
    for i, q in enumerate(queries):
        s = P @ Q[i]
        top = np.argsort(-s, kind="stable")[:100]
        dense = {cat.ids[j]: float(s[j]) for j in top}
        bm25 = {pid: float(sc) for pid, sc in rows[q]}
        runs["bm25"].append([pid for pid, _ in rows[q]])
        runs["dense"].append([cat.ids[j] for j in top])
        for w in WEIGHTS:
            runs[f"minmax w_bm25={w}"].append(fuse(bm25, dense, w))
    results = {name: M.aggregate([M.query_metrics(r, judged[q], conv["gain_offset"], conv["relevant_min"])
                                  for q, r in zip(queries, ranked)]) for name, ranked in runs.items()}
    print(M.format_table(results))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"results": results}, f, indent=1)
    print(json.dumps({name: round(m.get("NDCG@10", 0.0), 4) for name, m in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
