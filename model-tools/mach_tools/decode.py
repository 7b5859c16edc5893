"""Exact MACH decoding: score every label from the [R, B] bucket probabilities."""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from mach_tools.featurize import ProductHash


def label_buckets(labels: Sequence[str], product_hash: ProductHash) -> np.ndarray:
    """[K, R] int64: bucket of each label in each repetition."""
    return np.array([product_hash.buckets_of(p) for p in labels], dtype=np.int64).reshape(len(labels), -1)


AGGREGATIONS = ("mean", "log_mean")
# log_mean floors each repetition's probabilities 7 decades below its largest one (as the plugin's
# BucketTable.Tail.FLOOR), so one near-zero bucket cannot veto a product.
LOG_MEAN_DECADES = 1e-7


def aggregation_of(card: dict) -> str:
    """The estimator a bundle's heads are for: the card's "aggregation", absent = "mean"."""
    a = card.get("aggregation", "mean")
    if a not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {list(AGGREGATIONS)}, got {a!r}")
    return a


def scores(probs: np.ndarray, buckets: np.ndarray, aggregation: str = "mean") -> np.ndarray:
    """probs [n, R, B], buckets [K, R] -> [n, K] (spec/bundle-format.md, "aggregation"):
    mean:     (1/R) sum_r P_r(h_r(k))
    log_mean: (1/R) sum_r ln(max(P_r(h_r(k)), f_r) / f_r), f_r = max(min_b P_r, 1e-7 * max_b P_r),
              i.e. the mean of the heads' logits up to a per-query constant (>= 0, a valid Lucene score)."""
    n, R, _ = probs.shape
    out = np.zeros((n, buckets.shape[0]), dtype=np.float32)
    if aggregation == "mean":
        for r in range(R):
            out += probs[:, r, :][:, buckets[:, r]]
        return out / R
    if aggregation != "log_mean":
        raise ValueError(f"unknown aggregation {aggregation!r}")
    p = probs.astype(np.float64)
    floor = np.maximum(p.min(axis=2), p.max(axis=2) * LOG_MEAN_DECADES)  # [n, R]
    logs = np.log(np.maximum(p, floor[:, :, None]) / floor[:, :, None])  # [n, R, B], >= 0
    for r in range(R):
        out += logs[:, r, :][:, buckets[:, r]].astype(np.float32)
    return out / R


def top_k(score: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row-wise top k label indices and scores, best first (ties broken by label index)."""
    k = min(k, score.shape[1])
    part = np.argpartition(-score, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(score, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(score, idx, axis=1)


def rank_queries(queries: Sequence[str], predict: Callable[[Sequence[str]], np.ndarray],
                 labels: Sequence[str], buckets: np.ndarray, depth: int = 100,
                 judged: Dict[str, Dict[str, float]] = None, batch: int = 256, aggregation: str = "mean"):
    """For each query: the top `depth` labels, and the scores of its judged products (judged view)."""
    index = {p: i for i, p in enumerate(labels)}
    ranked: List[List[str]] = []
    judged_scores: List[Dict[str, float]] = []
    for s in range(0, len(queries), batch):
        qs = list(queries[s:s + batch])
        sc = scores(predict(qs), buckets, aggregation)
        idx, _ = top_k(sc, depth)
        for row, q in enumerate(qs):
            ranked.append([labels[i] for i in idx[row]])
            js = {}
            for p in (judged or {}).get(q, {}):
                if p in index:
                    js[p] = float(sc[row, index[p]])
            judged_scores.append(js)
    return ranked, judged_scores
