"""mach_tools tune-fusion: picks how a model's MACH scores are fused with the lexical query, on a
judged dev set through the engine, and writes the choice into the bundle card's `query_defaults`.

Against a running node that serves the model (`--model-id`, the same files as `--bundle`): the
catalog is indexed (tie-fair, a seeded shuffled order: engine_eval.index_catalog), then every cell
of a grid runs every dev query with _msearch: combine boost and hybrid, each with normalization
none (raw scores, mach_weight in --none-weights) and min_max (mach_weight in --min-max-weights, the
MACH share). The best dev NDCG@10 wins; a difference under 0.0001 (the printed precision) is a tie,
won by the simpler cell: boost before hybrid, none before min_max (no extra lexical round trip),
then the smaller weight. The card then gets {"combine", "normalization", "mach_weight", "top_n"};
its other query_defaults stay.

--index-side tunes index-side (bucket_field) queries instead, as engine-eval --index-side runs them
(a mach_buckets field of the model's hash family, every lexical hit scored from its buckets, so raw
weights are ~1,000x larger: default --none-weights 1000,3000,10000,30000), and writes
the choice into query_defaults.index_side: {"combine", "normalization", "mach_weight"} plus
"lexical_window" (= --top-n) with min_max and "scored_buckets" when given; the top-level block and
index_side's other keys stay.

The last line of stdout is one JSON object:
{"queries": N, "index_seed": S, "best": {query_defaults}, "ndcg@10": {"bm25": x, "<cell>": x, ...}}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from mach_tools import engine_eval as E
from mach_tools import metrics as M
from mach_tools.data import Catalog, UserError, judgments_by_query, read_pairs

DEFAULT_NONE_WEIGHTS = "1,3,10,30"
DEFAULT_INDEX_SIDE_NONE_WEIGHTS = "1000,3000,10000,30000"
DEFAULT_MIN_MAX_WEIGHTS = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
TUNED_KEYS = ("combine", "normalization", "mach_weight", "top_n", "lexical_window")
INDEX_SIDE_TUNED_KEYS = ("combine", "normalization", "mach_weight", "lexical_window", "scored_buckets")


@dataclass(frozen=True)
class Cell:
    combine: str  # boost | hybrid
    normalization: str  # none | min_max
    weight: float

    @property
    def name(self) -> str:
        return f"{self.combine} {self.normalization} w={self.weight:g}"

    def simplicity(self) -> tuple:
        return (self.combine != "boost", self.normalization != "none", self.weight)

    def settings(self, model_id: str, id_field: str, top_n: int, bucket_field: Optional[str] = None,
                 scored_buckets: Optional[int] = None) -> E.MachSettings:
        # every tuned parameter explicit (lexical_window = top_n), so the card's current defaults do not
        # change what is measured
        window = top_n if self.normalization == "min_max" else None
        return E.MachSettings(model_id, id_field, top_n, self.weight, normalization=self.normalization, lexical_window=window,
                              bucket_field=bucket_field, scored_buckets=scored_buckets)

    def query_defaults(self, top_n: int) -> dict:
        return {"combine": self.combine, "normalization": self.normalization, "mach_weight": self.weight, "top_n": top_n}

    def index_side_defaults(self, top_n: int, scored_buckets: Optional[int]) -> dict:
        """query_defaults.index_side: no top_n there, so min_max's measured window is written as lexical_window."""
        d = {"combine": self.combine, "normalization": self.normalization, "mach_weight": self.weight}
        if self.normalization == "min_max":
            d["lexical_window"] = top_n
        if scored_buckets is not None:
            d["scored_buckets"] = scored_buckets
        return d


def grid(none_weights: Sequence[float], min_max_weights: Sequence[float]) -> List[Cell]:
    return [Cell(c, n, w) for c in ("boost", "hybrid")
            for n, ws in (("none", none_weights), ("min_max", min_max_weights)) for w in ws]


def best_cell(cells: Sequence[Cell], ndcg: Dict[str, float]) -> Cell:
    return min(cells, key=lambda c: (-round(ndcg[c.name], 4), c.simplicity()))


def parse_weights(text: str, flag: str, low: float, high: float, low_open: bool) -> List[float]:
    try:
        ws = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} takes comma-separated numbers, got {text!r}")
    bad = [w for w in ws if not ((w > low if low_open else w >= low) and w <= high)]
    if not ws or bad:
        raise UserError(f"{flag}: weights must lie in {'(' if low_open else '['}{low:g}, {high:g}], got {text!r}")
    return ws


def model_matches_bundle(node: E.Node, model_id: str, card: dict, bundle: str) -> None:
    """Refuses to tune a model the node serves from other files than the bundle that gets the defaults."""
    served = node.call("GET", f"/_plugins/_mach/models/{model_id}", ok404=True)
    if served is None:
        raise UserError(f"model [{model_id}] is not served by the node: deploy {bundle} first "
                        f"(mach_tools deploy, or --deploy here)")
    served_card = served.get("card")
    if not isinstance(served_card, dict):
        raise UserError(f"the node does not show model [{model_id}]'s card; is it deployed? (POST _plugins/_mach/models/{model_id}/_deploy)")
    if served_card.get("files") != card.get("files"):
        raise UserError(f"model [{model_id}] on the node is not the bundle {bundle} (their files' sha256 differ); "
                        f"tune the model the defaults are written to")


def add_arguments(p) -> None:
    p.add_argument("--url", default="http://127.0.0.1:9200", help="the node (default %(default)s)")
    p.add_argument("--judgments", required=True, help="judged DEV set, TSV: query, product_id, relevance")
    p.add_argument("--bundle", required=True, help="the model's bundle directory: its mach.json gets query_defaults")
    p.add_argument("--model-id", required=True, help="the model id (or alias) the node serves this bundle under")
    p.add_argument("--deploy", action="store_true", help="first deploy --bundle under --model-id (skipped when the "
                                                         "cluster already holds this exact bundle there)")
    p.add_argument("--index", help="index name prefix (default: the model id + '-eval'); the index is PREFIX-sSEED")
    p.add_argument("--index-seed", type=int, default=0, help="the catalog's shuffled index order (default 0)")
    p.add_argument("--top-n", type=int, default=200, help="MACH candidates per query, written as top_n (default 200)")
    p.add_argument("--none-weights",
                   help=f"mach_weight grid for raw scores, each > 0 (default {DEFAULT_NONE_WEIGHTS}; "
                        f"--index-side {DEFAULT_INDEX_SIDE_NONE_WEIGHTS})")
    p.add_argument("--min-max-weights", default=DEFAULT_MIN_MAX_WEIGHTS,
                   help=f"mach_weight grid for min_max, each in [0, 1] (default {DEFAULT_MIN_MAX_WEIGHTS})")
    p.add_argument("--index-side", action="store_true",
                   help="tune index-side (bucket_field) queries as engine-eval --index-side runs them and write the "
                        "choice into query_defaults.index_side (the top-level block stays)")
    p.add_argument("--bucket-field", default="mach_buckets", help="--index-side: the bucket field's name (default mach_buckets)")
    p.add_argument("--hash-family", help="--index-side: the family to index (default: the served model card's product_hash family)")
    p.add_argument("--scored-buckets", type=int,
                   help="--index-side: the queries' scored_buckets, then written into query_defaults.index_side")
    p.add_argument("--limit", type=int, help="only the first N judged queries")
    p.add_argument("--dry-run", action="store_true", help="print the table and the choice; leave the card as it is")
    p.add_argument("--no-progress", action="store_true")


def run(args, catalog: Catalog, gain_offset: float, relevant_min: float, node: Optional[E.Node] = None) -> int:
    from mach_tools.bundle import load_card, write_query_defaults
    if not 1 <= args.top_n <= 10000:
        raise UserError(f"--top-n must be between 1 and 10000, got {args.top_n}")
    if not args.index_side and (args.hash_family or args.scored_buckets is not None):
        raise UserError("--hash-family and --scored-buckets apply only with --index-side")
    none_weights = args.none_weights or (DEFAULT_INDEX_SIDE_NONE_WEIGHTS if args.index_side else DEFAULT_NONE_WEIGHTS)
    cells = grid(parse_weights(none_weights, "--none-weights", 0, float("inf"), True),
                 parse_weights(args.min_max_weights, "--min-max-weights", 0, 1, False))
    card = load_card(args.bundle)
    if args.deploy:
        from mach_tools.deploy import ensure_deployed
        ensure_deployed(args.url, args.bundle, args.model_id, progress=not args.no_progress)
    node = node or E.Node(args.url)
    model_matches_bundle(node, args.model_id, card, args.bundle)
    judged = judgments_by_query(read_pairs(args.judgments))
    if args.limit:
        judged = dict(list(judged.items())[:args.limit])
    bucket_field = E.index_side_field(node, args) if args.index_side else None
    index = E.seeded_index(args.index or f"{args.model_id}-eval" + ("-buckets" if bucket_field else ""), args.index_seed)
    progress = not args.no_progress
    E.index_catalog(node, index, catalog, args.id_field, seed=args.index_seed, progress=progress, bucket_field=bucket_field)

    fields = catalog.field_names
    queries = {"bm25": lambda text: E.lexical_query(text, fields)}
    for c in cells:
        mach = c.settings(args.model_id, args.id_field, args.top_n, bucket_field.name if bucket_field else None, args.scored_buckets)
        queries[c.name] = lambda text, c=c, mach=mach: E.method_query(c.combine, text, fields, mach)
    ranked, judged_scores, _ = E.run_searches(node, index, judged, queries, args.id_field, progress, judged_only=False)
    results = E.score_methods(judged, ranked, judged_scores, gain_offset, relevant_min)
    ndcg = {name: r.get("NDCG@10", 0.0) for name, r in results.items()}
    best = best_cell(cells, ndcg)

    print(M.format_table({(f"{n}  <- best" if n == best.name else n): r for n, r in results.items()}))
    print(f"{len(judged)} dev queries x {len(queries)} runs (index seed {args.index_seed}); best by NDCG@10: {best.name} "
          f"({ndcg[best.name]:.4f}, bm25 {ndcg['bm25']:.4f})")
    defaults = dict(card.get("query_defaults") or {})
    if bucket_field:
        side = {k: v for k, v in (defaults.get("index_side") or {}).items() if k not in INDEX_SIDE_TUNED_KEYS}
        side.update(best.index_side_defaults(args.top_n, args.scored_buckets))
        defaults["index_side"] = side
    else:
        defaults = {k: v for k, v in defaults.items() if k not in TUNED_KEYS}
        defaults.update(best.query_defaults(args.top_n))
    if args.dry_run:
        print(f"--dry-run: {args.bundle}/mach.json left as it is; it would get query_defaults {json.dumps(defaults)}")
    else:
        write_query_defaults(args.bundle, defaults)
        print(f"wrote query_defaults {json.dumps(defaults)} into {args.bundle}/mach.json (bundle checked); the node serves "
              f"the card it was deployed with: deploy the bundle again (under a new id) to serve them")
    print(json.dumps({"queries": len(judged), "index_seed": args.index_seed, "best": defaults,
                      "ndcg@10": {n: round(v, 4) for n, v in ndcg.items()}}))
    return 0
