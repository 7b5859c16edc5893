"""Reading catalogs, query-product pairs and judgments, with one-line errors for bad input."""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

csv.field_size_limit(sys.maxsize)


class UserError(Exception):
    """Bad input or arguments: the CLI prints the message (no traceback) and exits with status 2."""


@dataclass
class Catalog:
    ids: List[str]
    field_names: List[str]
    fields: List[List[str]]  # per product, one string per field name ("" when absent)

    def __len__(self) -> int:
        return len(self.ids)

    def title(self, k: int) -> str:
        """The product's first non-empty field (its title when it has one)."""
        return next((f for f in self.fields[k] if f), "")

    def text(self, k: int) -> str:
        return " ".join(f for f in self.fields[k] if f)

    def index(self) -> Dict[str, int]:
        return {p: k for k, p in enumerate(self.ids)}


def _open(path: str):
    try:
        return open(path, "r", encoding="utf-8", newline="")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found")
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a file")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})")


def _tsv_rows(path: str):
    """Header dict + rows of a tab-separated file (no quoting: titles hold bare quotes)."""
    try:
        with _open(path) as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header is None:
                raise UserError(f"{path}: empty file, expected a header line")
            rows = [r for r in reader if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text")
    return [h.strip() for h in header], rows


def _field_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return " ".join(_field_text(x) for x in v)
    return str(v).strip()


def read_catalog(path: str, id_field: Optional[str] = None,
                 text_fields: Optional[Sequence[str]] = None) -> Catalog:
    """TSV with a header (id column + text columns) or NDJSON (one JSON object per line).

    id_field defaults to "product_id"; text_fields default to every other TSV column (NDJSON: "title").
    """
    id_field = id_field or "product_id"
    is_json = path.endswith((".ndjson", ".jsonl", ".json"))
    if is_json:
        ids, fields = [], []
        names = list(text_fields or ["title"])
        try:
            with _open(path) as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UserError(f"{path}:{n}: invalid JSON ({e.msg})")
                    if not isinstance(obj, dict):
                        raise UserError(f"{path}:{n}: expected a JSON object per line")
                    if n == 1 or not ids:
                        missing = [c for c in [id_field] + names if c not in obj]
                        if missing:
                            raise UserError(f"{path}: missing field(s) {', '.join(missing)} "
                                            f"(fields: {', '.join(obj.keys())})")
                    pid = _field_text(obj.get(id_field))
                    if not pid:
                        raise UserError(f"{path}:{n}: empty product id in field '{id_field}'")
                    ids.append(pid)
                    fields.append([_field_text(obj.get(c)) for c in names])
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text")
    else:
        header, rows = _tsv_rows(path)
        if id_field not in header:
            raise UserError(f"{path}: missing column '{id_field}' (columns: {', '.join(header)})")
        names = list(text_fields or [h for h in header if h != id_field])
        missing = [c for c in names if c not in header]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(header)})")
        if not names:
            raise UserError(f"{path}: no text columns besides '{id_field}'")
        col = {h: i for i, h in enumerate(header)}
        ids, fields = [], []
        for n, r in enumerate(rows, 2):
            pid = r[col[id_field]].strip() if col[id_field] < len(r) else ""
            if not pid:
                raise UserError(f"{path}:{n}: empty product id")
            ids.append(pid)
            fields.append([r[col[c]].strip() if col[c] < len(r) else "" for c in names])
    if not ids:
        raise UserError(f"{path}: empty catalog (no products)")
    seen, dups = set(), []
    for p in ids:
        if p in seen:
            dups.append(p)
        seen.add(p)
    if dups:
        raise UserError(f"{path}: {len(dups)} duplicate product id(s), e.g. {', '.join(dups[:5])}")
    for p in ids:
        if "\n" in p or "\r" in p:
            raise UserError(f"{path}: product id with a line break: {p!r}")
    return Catalog(ids=ids, field_names=names, fields=fields)


@dataclass
class Pairs:
    queries: List[str]
    product_ids: List[str]
    relevance: List[float]  # 1.0 when the file has no relevance column


def read_pairs(path: str, query_col: str = "query", product_col: str = "product_id",
               relevance_col: str = "relevance") -> Pairs:
    """Query-product TSV with a header: query, product_id and an optional relevance column."""
    header, rows = _tsv_rows(path)
    missing = [c for c in (query_col, product_col) if c not in header]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(header)})")
    col = {h: i for i, h in enumerate(header)}
    qs, ps, rels = [], [], []
    for n, r in enumerate(rows, 2):
        if len(r) <= max(col[query_col], col[product_col]):
            raise UserError(f"{path}:{n}: expected {len(header)} tab-separated columns, got {len(r)}")
        qs.append(r[col[query_col]].strip())
        ps.append(r[col[product_col]].strip())
        if relevance_col in col:
            try:
                rels.append(float(r[col[relevance_col]]))
            except (ValueError, IndexError):
                raise UserError(f"{path}:{n}: relevance is not a number: {r[col[relevance_col]]!r}"
                                if col[relevance_col] < len(r) else f"{path}:{n}: missing relevance")
        else:
            rels.append(1.0)
    if not qs:
        raise UserError(f"{path}: no rows")
    return Pairs(qs, ps, rels)


def check_known(pairs: Pairs, known: Dict[str, int], path: str, what: str, skip_unknown: bool) -> Pairs:
    """Products named in pairs must be in the catalog (or the bundle's labels)."""
    unknown = [p for p in pairs.product_ids if p not in known]
    if not unknown:
        return pairs
    distinct = sorted(set(unknown))
    if not skip_unknown:
        raise UserError(f"{path}: {len(unknown)} of {len(pairs.product_ids)} rows name products not in the "
                        f"{what} ({len(distinct)} distinct, e.g. {', '.join(distinct[:5])}); "
                        f"fix the file or pass --skip-unknown")
    print(f"warning: {path}: skipping {len(unknown)} rows whose product is not in the {what} "
          f"(e.g. {', '.join(distinct[:3])})", file=sys.stderr)
    keep = [i for i, p in enumerate(pairs.product_ids) if p in known]
    return Pairs([pairs.queries[i] for i in keep], [pairs.product_ids[i] for i in keep],
                 [pairs.relevance[i] for i in keep])


def judgments_by_query(pairs: Pairs) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = {}
    for q, p, r in zip(pairs.queries, pairs.product_ids, pairs.relevance):
        out.setdefault(q, {})[p] = r
    return out
