"""A stand-in for a node with the plugin, for engine-eval and tune-fusion tests: indices kept as their
documents in bulk order; _msearch scores each query by the plugin's documented formulas
(plugin/README.md) from fixed lexical and MACH scores per (query text, product), and breaks score ties
by index order, as OpenSearch does. Index-side MACH (a `mach_buckets` field named by "bucket_field"):
the mapping must have that field, filled by copy_to; every lexical hit then gets its MACH score,
not only MACH's top_n (per-document fusion)."""
import json
from typing import Dict, List, Optional

from mach_tools.data import UserError


class FakeNode:
    def __init__(self, lexical: Dict[str, Dict[str, float]], mach: Dict[str, Dict[str, float]],
                 cards: Optional[Dict[str, dict]] = None):
        self.lexical, self.mach, self.cards = lexical, mach, cards or {}
        self.indices: Dict[str, dict] = {}  # name -> {"meta": ..., "docs": [ids in bulk order]}
        self.searches: List[dict] = []  # every query body _msearch received
        self.bulks = 0

    def call(self, method, path, body=None, ndjson=None, ok404=False):
        parts = path.strip("/").split("/")
        if parts[0] == "_plugins":
            card = self.cards.get(parts[3])
            if card is None:
                if ok404:
                    return None
                raise UserError(f"{method} {path}: HTTP 404")
            return {"model_id": parts[3], "card": card}
        if path == "/_msearch":
            lines = [json.loads(x) for x in ndjson.splitlines() if x.strip()]
            return {"responses": [self._search(h["index"], b) for h, b in zip(lines[::2], lines[1::2])]}
        index = parts[0]
        sub = parts[1] if len(parts) > 1 else None
        if index not in self.indices and not (method == "PUT" and sub is None):
            if ok404:
                return None
            raise UserError(f"{method} {path}: HTTP 404")
        if method == "GET" and sub == "_mapping":
            return {index: {"mappings": {"_meta": self.indices[index]["meta"]}}}
        if method == "GET" and sub == "_count":
            return {"count": len(self.indices[index]["docs"])}
        if method == "DELETE":
            del self.indices[index]
            return {"acknowledged": True}
        if method == "PUT" and sub is None:
            self.indices[index] = {"meta": body["mappings"].get("_meta", {}), "docs": [],
                                   "properties": body["mappings"].get("properties", {})}
            return {"acknowledged": True}
        if sub == "_bulk":
            self.bulks += 1
            lines = [json.loads(x) for x in ndjson.splitlines() if x.strip()]
            self.indices[index]["docs"] += [h["index"]["_id"] for h in lines[::2]]
            return {"errors": False, "items": []}
        return {"acknowledged": True}  # _settings, _refresh

    def _search(self, index: str, body: dict) -> dict:
        self.searches.append(body)
        error = self._bucket_field_error(index, body["query"])
        if error:
            return {"error": {"type": "query_shard_exception", "reason": error}, "status": 400}
        scores = self._scores(body["query"])
        order = {pid: i for i, pid in enumerate(self.indices[index]["docs"])}
        ranked = sorted((p for p in scores if p in order), key=lambda p: (-scores[p], order[p]))[:body["size"]]
        return {"hits": {"hits": [{"_id": p, "_score": scores[p]} for p in ranked]}}

    def _bucket_field_error(self, index: str, q: dict) -> Optional[str]:
        m = (q.get("bool", {}).get("must", [q])[0]).get("mach")
        if not m or "bucket_field" not in m:
            return None
        props = self.indices[index]["properties"]
        field = props.get(m["bucket_field"], {})
        if field.get("type") != "mach_buckets":
            return f"[bucket_field] [{m['bucket_field']}] is not a mach_buckets field"
        if not any(p.get("copy_to") == m["bucket_field"] for p in props.values()):
            return f"nothing copies a product id into [{m['bucket_field']}]"
        return None

    def _scores(self, q: dict) -> Dict[str, float]:
        if "bool" in q:  # the judged-only view: the query, filtered to the judged products
            inner = self._scores(q["bool"]["must"][0])
            keep = set(next(iter(q["bool"]["filter"][0]["terms"].values())))
            return {p: s for p, s in inner.items() if p in keep}
        if "match" in q or "multi_match" in q:
            text = next(iter(q["match"].values())) if "match" in q else q["multi_match"]["query"]
            return {p: s for p, s in self.lexical.get(text, {}).items() if s > 0}
        m = q["mach"]
        top = sorted(self.mach.get(m["query_text"], {}).items(), key=lambda x: -x[1])[:m.get("top_n", 100)]
        mach = dict(top)
        if "lexical" not in m:
            return mach
        lexical = self._scores(m["lexical"])
        if "bucket_field" in m:  # index-side: every lexical hit is scored from its buckets
            every = self.mach.get(m["query_text"], {})
            mach.update({p: every[p] for p in lexical if p in every})
        combine, norm = m.get("combine", "boost"), m.get("normalization", "none")
        w = m.get("mach_weight", 0.5 if norm == "min_max" else 10.0)
        if combine == "filter":
            return {p: s for p, s in lexical.items() if p in mach}
        if norm == "min_max":
            window = sorted(lexical.values(), reverse=True)[:m.get("lexical_window", m.get("top_n", 100))]
            lexical = {p: (1 - w) * mm(s, window) for p, s in lexical.items()}
            mach = {p: w * mm(s, list(mach.values())) for p, s in mach.items()}
        else:
            mach = {p: w * s for p, s in mach.items()}
        keys = set(lexical) if combine == "boost" else set(lexical) | set(mach)
        return {p: lexical.get(p, 0.0) + mach.get(p, 0.0) for p in keys}


def mm(s: float, top: List[float]) -> float:
    lo, hi = min(top), max(top)
    if hi > lo:
        return max(0.0, (s - lo) / (hi - lo))
    return s / hi if hi > 0 else 0.0
