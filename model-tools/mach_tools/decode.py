"""Exact MACH decoding: score every label from the [R, B] bucket probabilities."""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from mach_tools.featurize import ProductHash


def label_buckets(labels: Sequence[str], product_hash: ProductHash) -> np.ndarray:
    """[K, R] int64: bucket of each label in each repetition."""
    return np.array([product_hash.buckets_of(p) for p in labels], dtype=np.int64).reshape(len(labels), -1)


def scores(probs: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """probs [n, R, B], buckets [K, R] -> [n, K]: mean over r of P_r(bucket_r(k))."""
    n, R, _ = probs.shape
    out = np.zeros((n, buckets.shape[0]), dtype=np.float32)
    for r in range(R):
        out += probs[:, r, :][:, buckets[:, r]]
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
                 judged: Dict[str, Dict[str, float]] = None, batch: int = 256):
    """For each query: the top `depth` labels, and the scores of its judged products (judged view)."""
    index = {p: i for i, p in enumerate(labels)}
    ranked: List[List[str]] = []
    judged_scores: List[Dict[str, float]] = []
    for s in range(0, len(queries), batch):
        qs = list(queries[s:s + batch])
        sc = scores(predict(qs), buckets)
        idx, _ = top_k(sc, depth)
        for row, q in enumerate(qs):
            ranked.append([labels[i] for i in idx[row]])
            js = {}
            for p in (judged or {}).get(q, {}):
                if p in index:
                    js[p] = float(sc[row, index[p]])
            judged_scores.append(js)
    return ranked, judged_scores
