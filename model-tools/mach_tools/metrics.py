"""Ranking metrics, one implementation for offline and engine-side evaluation (DESIGN.md section 3).

Conventions: the ranking is over the whole catalog and unjudged products count as not relevant.
NDCG uses linear gains, gain = max(relevance - gain_offset, 0) (Home Depot: offset 1, ESCI: 0),
and is averaged over queries with a non-zero ideal DCG. "Relevant" (P@k, recall@k, MRR@10) means
relevance >= relevant_min (Home Depot 2.5, ESCI 3); those are averaged over queries that have at
least one relevant product. The judged-only view re-ranks each query's judged products by score; it
is averaged over queries whose judged products have at least two different gains (absent otherwise).
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

PRESETS = {
    "homedepot": {"gain_offset": 1.0, "relevant_min": 2.5},
    "esci": {"gain_offset": 0.0, "relevant_min": 3.0},
    "synth": {"gain_offset": 0.0, "relevant_min": 1.0},
}
METRIC_NAMES = ["P@1", "P@5", "recall@100", "NDCG@10", "MRR@10", "judged_NDCG@10"]


def _dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def query_metrics(ranked: Sequence[str], judged: Mapping[str, float], gain_offset: float,
                  relevant_min: float, judged_scores: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """Metrics of one query. ranked: product ids best first (at least 100 when the catalog has them).
    Keys are absent where the query does not count (no relevant product / zero ideal DCG)."""
    out: Dict[str, float] = {}
    gain = {p: max(r - gain_offset, 0.0) for p, r in judged.items()}
    ideal = _dcg(sorted(gain.values(), reverse=True)[:10])
    if ideal > 0:
        out["NDCG@10"] = _dcg([gain.get(p, 0.0) for p in ranked[:10]]) / ideal
        # Only judged products of different grades can be put in a wrong order: with one grade (the
        # synthetic shop judges only relevant products) any order scores 1, so such a query does not count.
        if judged_scores is not None and len(set(gain.values())) > 1:
            # Stable order: ties keep the judgments' order, so it is deterministic.
            order = sorted(judged, key=lambda p: -judged_scores.get(p, 0.0))
            out["judged_NDCG@10"] = _dcg([gain[p] for p in order[:10]]) / ideal
    relevant = {p for p, r in judged.items() if r >= relevant_min}
    if relevant:
        hits = [p in relevant for p in ranked[:100]]
        out["P@1"] = float(sum(hits[:1]))
        out["P@5"] = sum(hits[:5]) / 5.0
        out["recall@100"] = sum(hits) / len(relevant)
        out["MRR@10"] = next((1.0 / (i + 1) for i, h in enumerate(hits[:10]) if h), 0.0)
    return out


def aggregate(per_query: List[Dict[str, float]]) -> Dict[str, float]:
    """Mean of each metric over the queries where it is defined, plus how many queries counted."""
    out: Dict[str, float] = {}
    for name in METRIC_NAMES:
        vals = [m[name] for m in per_query if name in m]
        if vals:
            out[name] = sum(vals) / len(vals)
    out["queries"] = float(len(per_query))
    out["queries_with_relevant"] = float(sum(1 for m in per_query if "P@1" in m))
    return out


def format_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """results: row name -> metrics. A fixed-width table for the terminal."""
    cols = [c for c in METRIC_NAMES if any(c in r for r in results.values())]
    name_w = max([len("model")] + [len(n) for n in results])
    lines = ["  ".join(["model".ljust(name_w)] + [c.rjust(max(len(c), 6)) for c in cols])]
    for n, r in results.items():
        lines.append("  ".join([n.ljust(name_w)] + [
            (f"{r[c]:.4f}" if c in r else "-").rjust(max(len(c), 6)) for c in cols]))
    return "\n".join(lines)
