"""Offline fusion analysis over engine-eval's per-query rankings (`engine-eval --rankings FILE`).

What could any fusion of the lexical and the MACH lists gain, without touching the node? For each
query it has both top-100 lists with their scores, so it computes NDCG@10 of:
- each list alone (equal to engine-eval's own figures: the same metric code);
- the oracle switch: per query the better of the two lists, an upper bound on any rule that picks
  one list per query (e.g. "use MACH when BM25 finds little");
- reciprocal-rank fusion, sum over lists of w_list / (k + rank), at several k and MACH weights w;
- linear fusion of scores normalized by each list's top score: s_lex / max + w * s_mach / max.
Queries with no gain (zero ideal DCG) do not count, as in engine-eval.
"""
import json
from typing import Callable, Dict, List, Sequence

from mach_tools import metrics as M
from mach_tools.data import UserError

Hits = List[List]  # [[product id, score], ...] best first


def read_rankings(path: str, lexical: str = "bm25", mach: str = "mach") -> List[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            row = json.loads(line)
            missing = [m for m in (lexical, mach) if m not in row.get("hits", {})]
            if missing:
                raise UserError(f"{path} line {n}: no {missing} hits (run engine-eval with --methods {lexical},{mach} --rankings)")
            rows.append(row)
    if not rows:
        raise UserError(f"{path}: no queries")
    return rows


def rrf(lexical: Hits, mach: Hits, k: float, w: float) -> List[str]:
    score: Dict[str, float] = {}
    for weight, hits in ((1.0, lexical), (w, mach)):
        for rank, (pid, _) in enumerate(hits):
            score[pid] = score.get(pid, 0.0) + weight / (k + rank + 1)
    return sorted(score, key=lambda p: -score[p])


def linear(lexical: Hits, mach: Hits, w: float) -> List[str]:
    score: Dict[str, float] = {}
    for weight, hits in ((1.0, lexical), (w, mach)):
        top = hits[0][1] if hits and hits[0][1] > 0 else 1.0
        for pid, s in hits:
            score[pid] = score.get(pid, 0.0) + weight * s / top
    return sorted(score, key=lambda p: -score[p])


def analyse(rows: Sequence[dict], gain_offset: float, relevant_min: float, lexical: str = "bm25",
            mach: str = "mach", rrf_k: Sequence[float] = (10, 60), weights: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0)):
    """[(name, NDCG@10)] over the queries with a non-zero ideal DCG."""
    def ndcg(ranked, judged):
        return M.query_metrics(ranked, judged, gain_offset, relevant_min).get("NDCG@10")

    rows = [r for r in rows if ndcg([], r["judged"]) is not None]

    def mean(rank: Callable[[dict], List[str]]) -> float:
        return sum(ndcg(rank(r), r["judged"]) for r in rows) / len(rows)

    ids = lambda hits: [pid for pid, _ in hits]  # noqa: E731
    out = [(lexical, mean(lambda r: ids(r["hits"][lexical]))), (mach, mean(lambda r: ids(r["hits"][mach])))]
    out.append(("oracle switch (better list per query)",
                sum(max(ndcg(ids(r["hits"][lexical]), r["judged"]), ndcg(ids(r["hits"][mach]), r["judged"])) for r in rows) / len(rows)))
    for k in rrf_k:
        for w in weights:
            out.append((f"rrf k={k:g} w={w:g}", mean(lambda r: rrf(r["hits"][lexical], r["hits"][mach], k, w))))
    for w in weights:
        out.append((f"linear normalized w={w:g}", mean(lambda r: linear(r["hits"][lexical], r["hits"][mach], w))))
    return len(rows), out


def run(path: str, gain_offset: float, relevant_min: float, lexical: str, mach: str) -> int:
    n, table = analyse(read_rankings(path, lexical, mach), gain_offset, relevant_min, lexical, mach)
    base = table[0][1]
    print(f"{n} queries (non-zero ideal DCG), NDCG@10; ratio to {lexical}")
    width = max(len(name) for name, _ in table)
    for name, v in table:
        print(f"{name:<{width}}  {v:.4f}  {v / base if base else float('nan'):.3f}x")
    print(json.dumps({"queries": n, "ndcg@10": {name: round(v, 4) for name, v in table}}))
    return 0
