"""What index-side MACH loses by sending the shards a truncated bucket table (issue 15), offline.

Index-side MACH sends each shard, per repetition, the bucket probabilities; to keep requests small
the coordinator may send only the top s buckets of each repetition plus one residual value,
(1 - sum of the sent)/(B - s), that every other bucket gets. This script measures on dev, for each s:
  - MACH alone (every catalog product scored from the truncated table): NDCG@10, recall@100;
  - per-document fusion over BM25's top window (100, and 1000 when the dump has it) united with
    MACH's top 100: raw bm25 + w * mach(doc) and min-max (1 - w) mm(bm25) + w mm(mach), w picked on
    a grid (on all of dev: optimistic; and on one half of dev, reported on the other half);
  - the table's bytes per shard request (bucket ids as delta vints + float32 probabilities, or
    8-bit probabilities), from the model's real tables and for R 32 / B 20,000 from random tables.
Also a variant "q8" whose sent probabilities are quantized to 8 bits (log scale per repetition).

    /usr/bin/python3 model-tools/scripts/bucket_table_eval.py --bundle /work/models/hd-enc \
        --judgments /work/shared/data/homedepot/judgments-dev.tsv --preset homedepot \
        --bm25 /work/exp/bm25-hd-dev-s0.json --embed-cache /work/exp/cache --out /tmp/hd-enc.json
    /usr/bin/python3 model-tools/scripts/bucket_table_eval.py --summarize /tmp/hd-enc.json ...   (markdown tables)
"""
import argparse
import json
import os
import pathlib
import sys
import zlib

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from mach_tools import metrics as M  # noqa: E402
from mach_tools.bundle import ENCODER_FORMAT_VERSION, load_card, onnx_predictor, read_labels  # noqa: E402
from mach_tools.data import judgments_by_query, read_pairs  # noqa: E402
from mach_tools.decode import label_buckets, scores, top_k  # noqa: E402
from mach_tools.featurize import ProductHash  # noqa: E402

S_VALUES = [16, 64, 256, 1024]
RAW_W = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]
MM_W = [round(0.1 * i, 1) for i in range(11)]


def truncate(probs: np.ndarray, s: int) -> np.ndarray:
    """[n, R, B] -> the table a shard sees: the top s of each repetition, the residual elsewhere."""
    n, R, B = probs.shape
    if s >= B:
        return probs
    top = np.argpartition(-probs, s - 1, axis=2)[:, :, :s]
    sent = np.take_along_axis(probs, top, axis=2)
    residual = np.clip(1.0 - sent.sum(axis=2, keepdims=True), 0.0, None) / (B - s)
    out = np.broadcast_to(residual, probs.shape).copy()
    np.put_along_axis(out, top, sent, axis=2)
    return out


def quantize8(table: np.ndarray, s: int) -> np.ndarray:
    """The sent probabilities on a per-repetition 8-bit log scale (min..max of the sent); the
    residual stays float32 (one value per repetition)."""
    n, R, B = table.shape
    k = min(s, B)
    top = np.argpartition(-table, k - 1, axis=2)[:, :, :k]
    sent = np.maximum(np.take_along_axis(table, top, axis=2), 1e-30)  # a softmax can underflow to 0
    lo, hi = np.log(sent.min(axis=2, keepdims=True)), np.log(sent.max(axis=2, keepdims=True))
    span = np.maximum(hi - lo, 1e-9)
    q = np.round((np.log(sent) - lo) / span * 255)
    out = table.copy()
    np.put_along_axis(out, top, np.exp(lo + q / 255 * span).astype(np.float32), axis=2)
    return out


def vint_len(v: np.ndarray) -> np.ndarray:
    return 1 + (v >= 1 << 7) + (v >= 1 << 14) + (v >= 1 << 21) + (v >= 1 << 28)


def table_bytes(ids_per_rep, B: int) -> dict:
    """Bytes of one request's table: per repetition a vint count, the sorted ids as delta vints, the
    probabilities (4 or 1 bytes each, 8-bit adds 2 float32 scale values), one float32 residual.
    s = B needs no ids (dense: B float32)."""
    ids_bytes = 0
    n = 0
    for ids in ids_per_rep:
        ids = np.sort(np.asarray(ids, dtype=np.int64))
        deltas = np.diff(ids, prepend=0)
        ids_bytes += int(vint_len(deltas).sum()) + int(vint_len(np.array([len(ids)]))[0])
        n += len(ids)
    R = len(ids_per_rep)
    if n == R * B:
        return {"f32": 4 * n, "q8": n + 8 * R}
    return {"f32": ids_bytes + 4 * n + 4 * R, "q8": ids_bytes + n + 8 * R + 4 * R}


def ranked_from(score: np.ndarray, labels, depth=100):
    idx, _ = top_k(score[None, :], depth)
    return [labels[i] for i in idx[0]]


def fuse(bm: np.ndarray, mach: np.ndarray, w: float, kind: str, depth=100) -> np.ndarray:
    """Row indexes of the fused top `depth` (ties by row: BM25 order first)."""
    if kind == "raw":
        s = bm + w * mach
    else:
        def mm(x):
            lo, hi = x.min(), x.max()
            return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        s = (1 - w) * mm(bm) + w * mm(mach)
    return np.lexsort((np.arange(len(s)), -s))[:depth]


def markdown(reports) -> str:
    """One table per report (--summarize): MACH alone and each fusion's NDCG@10 by s, then the bytes."""
    f = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
    out = []
    for r in reports:
        name = os.path.basename(r["bundle"].rstrip("/"))
        out += [f"### {name} (R {r['R']}, B {r['B']}, {r['queries']} dev queries; BM25 NDCG@10 {f(r['bm25']['NDCG@10'])}, "
                f"recall@100 {f(r['bm25']['recall@100'])}; half 1: {f(r['bm25_half1'])})", ""]
        fusions = [k for k in r["rows"][0] if k.startswith("fuse")]
        out.append("| s | table | MACH NDCG@10 | MACH R@100 | " + " | ".join(
            f"{k} all-dev (w) | {k} half1 (w from half0)" for k in fusions) + " |")
        out.append("|" + "---|" * (4 + 2 * len(fusions)))
        for row in r["rows"]:
            cells = [str(row["s"]), row["table"], f(row["mach"]["NDCG@10"]), f(row["mach"]["recall@100"])]
            for k in fusions:
                v = row[k]
                cells += [f"{f(v['NDCG@10 tuned on all'])} ({v['w_all']})",
                          f"{f(v['NDCG@10 half1 (tuned on half0)'])} ({v['w_half0']})"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    r = reports[0]
    for key, label in (("bytes", None), ("bytes_r32_b20000", "R 32 / B 20000 (random top-s ids)")):
        rows = {}
        for rep in reports:
            if key == "bytes" and rep["B"] >= 4096:
                rows.setdefault(f"R {rep['R']} / B {rep['B']} ({os.path.basename(rep['bundle'].rstrip('/'))}'s top-s ids)",
                                rep[key])
            elif key != "bytes":
                rows.setdefault(label, rep[key])
        for lab, bs in rows.items():
            out.append(f"bytes per shard request, {lab}: " + "; ".join(
                f"s {b['s']}: {b['f32']:,.0f} (f32) / {b['q8']:,.0f} (8-bit)" for b in bs))
    return "\n".join(out)


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--summarize"]:
        print(markdown([json.load(open(p)) for p in argv[1:]]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--judgments", required=True)
    ap.add_argument("--preset", choices=sorted(M.PRESETS), required=True)
    ap.add_argument("--bm25", required=True, help="{query: [[product_id, score], ...]} best first (bm25_dump.py)")
    ap.add_argument("--embed-cache")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    conv = M.PRESETS[args.preset]
    card = load_card(args.bundle)
    labels = read_labels(args.bundle, card)
    index = {p: i for i, p in enumerate(labels)}
    R, B = int(card["R"]), int(card["B"])
    buckets = label_buckets(labels, ProductHash(buckets=B, seeds=card["product_hash"]["seeds"]))
    judged = judgments_by_query(read_pairs(args.judgments))
    queries = list(judged)[:args.limit] if args.limit else list(judged)
    bm25 = json.load(open(args.bm25, encoding="utf-8"))
    missing = [q for q in queries if q not in bm25]
    if missing:
        sys.exit(f"{args.bm25} lacks {len(missing)} judged queries, e.g. {missing[0]!r}")
    windows = [w for w in (100, 1000) if max(len(bm25[q]) for q in queries) > (w // 2 if w > 100 else 0)]

    if card.get("format_version") == ENCODER_FORMAT_VERSION and args.embed_cache:
        from mach_tools.encoder import DEFAULT_DIR, SentenceEncoder
        from mach_tools.onnx_numpy import OnnxNumpyModel
        enc = SentenceEncoder.from_dir(DEFAULT_DIR, max_tokens=card["encoder"]["tokenizer"]["max_tokens"],
                                       cache_dir=args.embed_cache)
        assert enc.sha256 == card["files"][card["encoder"]["file"]], "the cache's encoder is not the bundle's"
        heads = OnnxNumpyModel(os.path.join(args.bundle, card["onnx"]["file"]))
        in_name = card["onnx"]["inputs"][0]["name"]
        predict = lambda qs: heads.run({in_name: enc.embed(list(qs))})[card["onnx"]["output"]["name"]]  # noqa: E731
    else:
        predict = onnx_predictor(args.bundle, card)
    probs = np.concatenate([predict(queries[i:i + 128]) for i in range(0, len(queries), 128)]).astype(np.float32)

    s_values = sorted({min(s, B) for s in S_VALUES} | {B})
    # Two dev halves by a stable hash of the query: tune on one, report on the other.
    half = np.array([zlib.crc32(q.encode("utf-8")) % 2 for q in queries])
    per_query = {}  # config -> list of per-query metric dicts

    def add(name, qi, ranked):
        per_query.setdefault(name, [None] * len(queries))[qi] = M.query_metrics(
            ranked, judged[queries[qi]], conv["gain_offset"], conv["relevant_min"])

    nbytes = []
    for qi in range(len(queries)):
        rows = bm25[queries[qi]]
        add("bm25", qi, [p for p, _ in rows[:100]])
    for s in s_values:
        for variant in ("f32", "q8"):
            tables = truncate(probs, s)
            if variant == "q8":
                tables = quantize8(tables, s)
            tag = f"s={s}" + (" q8" if variant == "q8" else "")
            for lo in range(0, len(queries), 64):
                sc = scores(tables[lo:lo + 64], buckets)
                for j in range(sc.shape[0]):
                    qi = lo + j
                    add(f"mach {tag}", qi, ranked_from(sc[j], labels))
                    mach_top = [labels[i] for i in top_k(sc[j:j + 1], 100)[0][0]]
                    for W in windows:
                        rows = bm25[queries[qi]][:W]
                        ids = [p for p, _ in rows]
                        seen = set(ids)
                        ids += [p for p in mach_top if p not in seen]
                        bm = np.array([v for _, v in rows] + [0.0] * (len(ids) - len(rows)), dtype=np.float64)
                        mach = np.array([sc[j, index[p]] if p in index else 0.0 for p in ids], dtype=np.float64)
                        for kind, grid in (("raw", RAW_W), ("minmax", MM_W)):
                            for w in grid:
                                top = fuse(bm, mach, w, kind)
                                add(f"fuse{W} {kind} w={w} {tag}", qi, [ids[i] for i in top])
        if s < B:
            nbytes.append((s, [table_bytes([np.argpartition(-probs[qi, r], s - 1)[:s] for r in range(R)], B)
                                for qi in range(0, len(queries), max(1, len(queries) // 50))]))
    agg = {name: M.aggregate(pq) for name, pq in per_query.items()}
    halves = {h: {name: M.aggregate([m for m, hh in zip(pq, half) if hh == h]) for name, pq in per_query.items()}
              for h in (0, 1)}

    def best(prefix, tag, table):
        names = [n for n in table if n.startswith(prefix + " ") and n.endswith(" " + tag)]
        return max(names, key=lambda n: table[n].get("NDCG@10", 0.0))

    report = {"bundle": args.bundle, "R": R, "B": B, "queries": len(queries), "windows": windows, "rows": []}
    for s in s_values:
        for tag in (f"s={s}", f"s={s} q8"):
            row = {"s": s, "table": "q8" if tag.endswith("q8") else "f32",
                   "mach": {k: agg[f"mach {tag}"][k] for k in ("NDCG@10", "recall@100")}}
            for W in windows:
                for kind in ("raw", "minmax"):
                    prefix = f"fuse{W} {kind}"
                    b_all = best(prefix, tag, agg)
                    b0 = best(prefix, tag, halves[0])
                    row[prefix] = {"w_all": b_all.split("w=")[1].split()[0], "NDCG@10 tuned on all": agg[b_all]["NDCG@10"],
                                   "recall@100": agg[b_all]["recall@100"],
                                   "w_half0": b0.split("w=")[1].split()[0],
                                   "NDCG@10 half1 (tuned on half0)": halves[1][b0].get("NDCG@10")}
            report["rows"].append(row)
    report["bm25"] = {k: agg["bm25"][k] for k in ("NDCG@10", "recall@100")}
    report["bm25_half1"] = halves[1]["bm25"].get("NDCG@10")
    report["bytes"] = [{"s": s, "f32": float(np.mean([b["f32"] for b in bs])), "q8": float(np.mean([b["q8"] for b in bs]))}
                       for s, bs in nbytes] + [{"s": B, "f32": 4 * R * B, "q8": R * B + 8 * R}]
    rng = np.random.default_rng(0)  # R 32 / B 20,000: uniformly spread top-s ids (what hashing gives)
    report["bytes_r32_b20000"] = [
        {"s": s, **table_bytes([rng.choice(20000, s, replace=False) for _ in range(32)], 20000)}
        for s in S_VALUES] + [{"s": 20000, "f32": 4 * 32 * 20000, "q8": 32 * 20000 + 8 * 32}]
    print(json.dumps(report, indent=1))
    if args.out:
        json.dump(report, open(args.out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
