"""Demo queries against a running node with the plugin: BM25, MACH and hybrid side by side.

Indexes the catalog, deploys the bundle into the node's models dir, prints a few judged queries
with each method's top results (a '*' marks a product the judgments call relevant), then the
relevance of every method over all judged queries (model-tools engine-eval, same metrics code).
Reuses model-tools (mach_tools) for reading data, indexing and the queries.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model-tools"))

from mach_tools import engine_eval as E  # noqa: E402
from mach_tools import metrics as M  # noqa: E402
from mach_tools.data import UserError, judgments_by_query, read_catalog, read_pairs  # noqa: E402
from mach_tools.deploy import ensure_deployed  # noqa: E402

SHOWN = [("BM25", "bm25"), ("MACH", "mach"), ("hybrid (BM25 + MACH)", "hybrid")]


def pick_queries(judged, n):
    """n queries spread over the judgments file (deterministic)."""
    qs = list(judged)
    if len(qs) <= n:
        return qs
    step = len(qs) / n
    return [qs[int(i * step)] for i in range(n)]


def cell(title: str, relevant: bool, width: int) -> str:
    s = ("* " if relevant else "  ") + " ".join(title.split())
    return s if len(s) <= width else s[:width - 3] + "..."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--id-field", default="product_id")
    ap.add_argument("--text-fields", help="comma-separated, title first")
    ap.add_argument("--judgments", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--model-id", default="demo")
    ap.add_argument("--index", default="demo-products")
    ap.add_argument("--preset", default="synth", choices=sorted(M.PRESETS))
    ap.add_argument("--show", type=int, default=6, help="queries shown side by side")
    ap.add_argument("--top", type=int, default=3, help="results shown per method")
    ap.add_argument("--top-n", type=int, default=200, help="MACH candidates per query")
    ap.add_argument("--mach-weight", type=float, default=10.0, help="boost/hybrid weight (the plugin default)")
    ap.add_argument("--limit", type=int, default=300, help="judged queries for the metrics (0 = all)")
    ap.add_argument("--alias", help="model alias the index is bound to (default: <model id>-live)")
    ap.add_argument("--example", action="store_true", help="end with a curl request to try on the node")
    ap.add_argument("--catalog-side", action="store_true",
                    help="score MACH's top_n products from the model's catalog (product_id_field) instead of the "
                         "products' buckets stored in the index (bucket_field, the default)")
    args = ap.parse_args()

    fields = [f.strip() for f in args.text_fields.split(",")] if args.text_fields else None
    catalog = read_catalog(args.catalog, args.id_field, fields)
    titles = {pid: catalog.fields[k][0] for k, pid in enumerate(catalog.ids)}
    judged = judgments_by_query(read_pairs(args.judgments))
    relevant_min = M.PRESETS[args.preset]["relevant_min"]
    gain_offset = M.PRESETS[args.preset]["gain_offset"]

    node = E.Node(args.url)
    ensure_deployed(args.url, args.bundle, args.model_id, progress=False)
    # index-side MACH: each product's buckets are stored in the index (a mach_buckets field of the model's
    # hash family, filled from the product id), so every lexical hit gets its MACH score
    buckets = None if args.catalog_side else E.index_side_field(node, argparse.Namespace(
        model_id=args.model_id, bucket_field="mach_buckets", hash_family=None, scored_buckets=None))
    E.index_catalog(node, args.index, catalog, args.id_field, progress=False, bucket_field=buckets)
    # as in production: an alias to the model and the index bound to it, so a search needs only the text
    alias = args.alias or f"{args.model_id}-live"
    node.call("PUT", f"/_plugins/_mach/aliases/{alias}", {"model_id": args.model_id})
    field_setting = ({"index.mach.product_id_field": args.id_field} if buckets is None
                     else {"index.mach.bucket_field": buckets.name})
    node.call("PUT", f"/{args.index}/_settings", {"index.mach.model": alias, **field_setting})
    where = (f"MACH scores the model's top {args.top_n} products (catalog side)" if buckets is None
             else f"products' buckets in field [{buckets.name}], hash family {buckets.hash_family}")
    print(f"indexed {len(catalog)} products into [{args.index}]; model [{args.model_id}] from {args.bundle}, "
          f"alias [{alias}], index bound to it; {where}\n")

    mach = E.MachSettings(args.model_id, args.id_field, args.top_n, args.mach_weight,
                          bucket_field=buckets.name if buckets else None)
    width = 38
    for text in pick_queries(judged, args.show):
        rels = judged[text]
        cols = []
        for _, method in SHOWN:
            q = E.method_query(method, text, catalog.field_names, mach)
            resp = node.call("POST", f"/{args.index}/_search", {"query": q, "size": args.top, "_source": False})
            cols.append([(h["_id"], h["_score"]) for h in resp["hits"]["hits"]])
        print(f"query: {text!r}   ({sum(1 for r in rels.values() if r >= relevant_min)} judged relevant)")
        print("  " + " | ".join(name.ljust(width) for name, _ in SHOWN))
        print("  " + "-+-".join("-" * width for _ in SHOWN))
        for rank in range(args.top):
            row = []
            for col in cols:
                if rank < len(col):
                    pid = col[rank][0]
                    row.append(cell(titles.get(pid, pid), rels.get(pid, 0) >= relevant_min, width).ljust(width))
                else:
                    row.append("  (no result)".ljust(width))
            print("  " + " | ".join(row))
        print()

    subset = judged if not args.limit else dict(list(judged.items())[:args.limit])
    ranked, judged_scores, _ = E.run_queries(node, args.index, subset, E.METHODS, catalog.field_names, mach,
                                          progress=False)
    results = E.score_methods(subset, ranked, judged_scores, gain_offset, relevant_min)
    print(f"relevance over {len(subset)} judged queries (whole catalog; '*' above = relevance >= {relevant_min:g}):")
    print(textwrap.indent(M.format_table(results), "  "))
    if "judged_NDCG@10" not in results.get("bm25", {}):
        print("  (no judged_NDCG@10: every judged product has the same grade, so any order of them would score 1)")
    if args.example:
        print_example(node, args.url, args.index, next(iter(judged)))
    return 0


def print_example(node, url: str, index: str, text: str) -> None:
    """A request to try on the node, run once here first so that what is printed works."""
    body = {"size": 3, "_source": False, "query": {"mach": {"query_text": text}}}
    hits = node.call("POST", f"/{index}/_search", body)["hits"]["hits"]
    if not hits:
        raise UserError(f"the example query {text!r} found nothing through the index binding")
    print(f"\ntry it (index [{index}] is bound to the model alias, so the text is all a search needs):")
    print(f"  curl -s -XPOST {shlex.quote(f'{url}/{index}/_search?pretty')} -H 'Content-Type: application/json' \\")
    print(f"    -d {shlex.quote(json.dumps(body))}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        sys.exit(2)
