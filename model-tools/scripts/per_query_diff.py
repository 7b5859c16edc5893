"""Paired per-query comparison of two bundles on one judgment file (docs/embeddings.md, "How finely one pair of runs resolves the 1% bound"):
the mean difference B - A of NDCG@10 and recall@100 with its query-sampling standard error, and, when
B has a mixed input layer, the same split by the least frequent block any of a query's ids falls in.
  usage: python3 scripts/per_query_diff.py BUNDLE_A BUNDLE_B JUDGMENTS.tsv [--preset homedepot]
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mach_tools.bundle import load_card, onnx_predictor, read_labels  # noqa: E402
from mach_tools.data import judgments_by_query, read_pairs  # noqa: E402
from mach_tools.decode import aggregation_of, label_buckets  # noqa: E402
from mach_tools.features import CachedFeaturizer  # noqa: E402
from mach_tools.featurize import FeaturizerSpec, ProductHash  # noqa: E402
from mach_tools.metrics import PRESETS  # noqa: E402
from mach_tools.train import per_query_metrics  # noqa: E402

KEYS = ("NDCG@10", "recall@100")


def metrics_of(bundle, judged, gain_offset, relevant_min):
    card = load_card(bundle)
    labels = read_labels(bundle, card)
    ph = ProductHash(buckets=card["product_hash"]["buckets"], seeds=card["product_hash"]["seeds"])
    return per_query_metrics(onnx_predictor(bundle, card), labels, label_buckets(labels, ph), judged,
                             gain_offset, relevant_min, aggregation_of(card))


def rarest_block(bundle):
    """query text -> index of the least frequent mixed block its ids fall in (None: not a mixed bundle)."""
    card = load_card(bundle)
    layer = card.get("input_layer", {})
    if layer.get("kind") != "mixed":
        return None
    graph = onnx.load(os.path.join(bundle, card["onnx"]["file"])).graph
    rank_of = next(numpy_helper.to_array(t) for t in graph.initializer
                   if t.data_type == onnx.TensorProto.INT32 and len(t.dims) == 1 and t.dims[0] == layer["rows"])
    ends = np.cumsum([b["rows"] for b in layer["blocks"]])
    feat = CachedFeaturizer(FeaturizerSpec.from_card(card["featurizer"]))
    pad = feat.spec.padding_id
    return lambda q: max((int(np.searchsorted(ends, rank_of[i], side="right")) for i in feat.ids(q) if i != pad),
                         default=-1)


def report(title, pairs):
    for k in KEYS:
        xy = np.array([(a[k], b[k]) for a, b in pairs if k in a])  # queries where k counts
        if len(xy) > 1:
            d = xy[:, 1] - xy[:, 0]
            print(f"{title}: {k} A {xy[:, 0].mean():.4f} B {xy[:, 1].mean():.4f} "
                  f"diff {d.mean():+.4f} (se {d.std(ddof=1) / np.sqrt(len(d)):.4f}, {len(d)} queries)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("judgments")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="homedepot")
    args = ap.parse_args()
    go, rm = PRESETS[args.preset]["gain_offset"], PRESETS[args.preset]["relevant_min"]
    judged = judgments_by_query(read_pairs(args.judgments))
    a = metrics_of(args.a, judged, go, rm)
    b = metrics_of(args.b, judged, go, rm)
    report("all", list(zip(a, b)))
    block_of = rarest_block(args.b)
    if block_of:
        groups = {}
        for q, x, y in zip(judged, a, b):
            groups.setdefault(block_of(q), []).append((x, y))
        for blk in sorted(groups):
            report(f"rarest block {blk}", groups[blk])


if __name__ == "__main__":
    main()
