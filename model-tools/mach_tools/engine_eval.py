"""Relevance through the engine: BM25, MACH and each combination mode, measured side by side.

Against a running OpenSearch node with the plugin: indexes a catalog (skipped when the index already
holds it), deploys a model bundle, runs every judged query through each method with _msearch and
scores the rankings with mach_tools.metrics (the one metrics implementation, shared with `evaluate`).

Tie-fair: OpenSearch breaks score ties by index order, so the catalog is indexed in a seeded shuffled
order (one index per seed); with several seeds every metric is reported as the mean over seeds and
its min..max spread.

Index-side MACH (issue 15, --index-side): the index gets a `mach_buckets` field of the model's hash
family, filled by copy_to from the product-id field, and the queries name it as "bucket_field"
instead of "product_id_field": the shards then find MACH's candidates in the bucket postings and
give every document they score (lexical hits too) its MACH score from doc values.

Two views per method (DESIGN.md section 3):
- full catalog: the method's top 100 over the whole index; unjudged products count as not relevant;
- judged only: the query's judged products re-ranked by the method's score (the same query with a
  terms filter on them), free of the unjudged-means-irrelevant bias.

The last line of stdout is one JSON object:
{"queries": N, "index_seeds": [0], "methods": {"bm25": {"ndcg@10": x, "recall@100": x, "mrr@10": x, "p@1": x, ...}, ...},
 "spread": {"bm25": {"ndcg@10": [min, max], ...}, ...}}   (means and min..max over the seeds)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from mach_tools import metrics as M
from mach_tools.data import Catalog, UserError, judgments_by_query, read_pairs
from mach_tools.progress import bar as progress_bar

METHODS = ["bm25", "mach", "filter", "boost", "hybrid"]
# metrics.py names -> the keys of the final JSON line
JSON_KEYS = {"NDCG@10": "ndcg@10", "recall@100": "recall@100", "MRR@10": "mrr@10", "P@1": "p@1",
             "P@5": "p@5", "judged_NDCG@10": "judged_ndcg@10"}


class HttpError(UserError):
    """A non-2xx answer; `status` lets a caller retry what is worth retrying (429: a busy node)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Node:
    """The few REST calls this needs, over plain HTTP with JSON bodies."""

    def __init__(self, url: str, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body=None, ndjson: Optional[str] = None, ok404: bool = False):
        data, ctype = None, "application/json"
        if ndjson is not None:
            data, ctype = ndjson.encode("utf-8"), "application/x-ndjson"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            if ok404 and e.code == 404:
                return None
            detail = e.read().decode("utf-8", "replace")[:800]
            raise HttpError(e.code, f"{method} {path}: HTTP {e.code}: {detail}")
        except urllib.error.URLError as e:
            raise UserError(f"cannot reach {self.url} ({e.reason}); is the node running?")


def index_order(n: int, seed: int) -> List[int]:
    """The order the catalog is indexed in: a seeded shuffle. OpenSearch breaks score ties by index
    order, so indexing a catalog sorted by product id would let the ids decide ties."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def seeded_index(base: str, seed: int) -> str:
    return f"{base}-s{seed}"


def catalog_fingerprint(catalog: Catalog) -> str:
    h = hashlib.sha256()
    for pid, fields in zip(catalog.ids, catalog.fields):
        h.update(json.dumps([pid, fields], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


@dataclass(frozen=True)
class BucketField:
    """Index-side MACH: the `mach_buckets` field the index gets, and the hash family it stores."""
    name: str
    hash_family: str


def index_catalog(node: Node, index: str, catalog: Catalog, id_field: str, seed: int = 0, batch: int = 2000,
                  progress: bool = True, bucket_field: Optional[BucketField] = None) -> None:
    """(Re)creates the index, products in index_order(seed), unless it already holds this catalog in
    that order: the reuse key (catalog fingerprint, product count, seed and the bucket field, if any)
    is kept in the mapping's _meta. With bucket_field the product-id field is copied into a
    `mach_buckets` field of that hash family (the node computes each product's R bucket codes)."""
    key = {"catalog_sha256": catalog_fingerprint(catalog), "products": len(catalog), "index_seed": seed}
    if bucket_field is not None:
        key["bucket_field"] = {"name": bucket_field.name, "hash_family": bucket_field.hash_family}
    mapping = node.call("GET", f"/{index}/_mapping", ok404=True)
    if mapping is not None:
        meta = next(iter(mapping.values()), {}).get("mappings", {}).get("_meta", {}).get("mach_eval")
        if meta == key and node.call("GET", f"/{index}/_count").get("count") == len(catalog):
            print(f"index [{index}] already holds these {len(catalog)} products in seed {seed}'s order: reusing it",
                  file=sys.stderr)
            return
        node.call("DELETE", f"/{index}")
    props = {id_field: {"type": "keyword"}}
    for f in catalog.field_names:
        props[f] = {"type": "text", "analyzer": "english"}
    if bucket_field is not None:
        props[id_field]["copy_to"] = bucket_field.name
        props[bucket_field.name] = {"type": "mach_buckets", "hash_family": bucket_field.hash_family}
    node.call("PUT", f"/{index}", {"settings": {"number_of_shards": 1, "number_of_replicas": 0,
                                                 "refresh_interval": "-1"},
                                    "mappings": {"_meta": {"mach_eval": key}, "properties": props}})
    order = index_order(len(catalog), seed)
    bar = progress_bar(total=len(catalog), desc="indexing", unit="doc", enabled=progress)
    for start in range(0, len(catalog), batch):
        lines = []
        for k in order[start:start + batch]:
            doc = {id_field: catalog.ids[k]}
            doc.update({f: v for f, v in zip(catalog.field_names, catalog.fields[k]) if v})
            lines.append(json.dumps({"index": {"_id": catalog.ids[k]}}))
            lines.append(json.dumps(doc, ensure_ascii=False))
        resp = node.call("POST", f"/{index}/_bulk", ndjson="\n".join(lines) + "\n")
        if resp.get("errors"):
            first = next(i for i in resp["items"] if i["index"].get("error"))
            raise UserError(f"bulk indexing failed: {first['index']['error']}")
        bar.update(min(batch, len(catalog) - start))
    bar.close()
    node.call("PUT", f"/{index}/_settings", {"index": {"refresh_interval": "1s"}})
    node.call("POST", f"/{index}/_refresh")


def lexical_query(text: str, fields: Sequence[str]) -> dict:
    if len(fields) == 1:
        return {"match": {fields[0]: text}}
    return {"multi_match": {"query": text, "fields": list(fields), "type": "best_fields"}}


@dataclass(frozen=True)
class MachSettings:
    """What each `mach` query names besides its text; None / False = the plugin's default."""
    model_id: str
    id_field: str
    top_n: int = 200
    mach_weight: Optional[float] = None
    decoding: Optional[str] = None
    normalize: bool = False  # scores divided by the top product's: mach_weight then weighs its best guess
    min_repetitions: Optional[int] = None  # candidate decoding: f
    buckets_per_repetition: Optional[int] = None  # candidate decoding: m
    normalization: Optional[str] = None  # none | min_max (boost, hybrid)
    lexical_window: Optional[int] = None  # min_max: top lexical hits that give the lexical score range
    bucket_field: Optional[str] = None  # index-side MACH: the mach_buckets field, named instead of id_field
    scored_buckets: Optional[int] = None  # index-side: bucket probabilities sent per repetition (None: the plugin's default)


def method_query(method: str, text: str, fields: Sequence[str], mach: MachSettings) -> dict:
    lexical = lexical_query(text, fields)
    if method == "bm25":
        return lexical
    q = {"model_id": mach.model_id, "query_text": text}
    if mach.bucket_field is not None:
        q["bucket_field"] = mach.bucket_field
        if mach.scored_buckets is not None:
            q["scored_buckets"] = mach.scored_buckets
    else:
        q["product_id_field"] = mach.id_field
    q["top_n"] = mach.top_n
    if mach.decoding is not None:
        q["decoding"] = mach.decoding
    if mach.normalize:
        q["normalize"] = True
    if mach.min_repetitions is not None:
        q["min_repetitions"] = mach.min_repetitions
    if mach.buckets_per_repetition is not None:
        q["buckets_per_repetition"] = mach.buckets_per_repetition
    if method != "mach":
        q.update({"lexical": lexical, "combine": method})
        if mach.mach_weight is not None:
            q["mach_weight"] = mach.mach_weight
        if mach.normalization is not None and method != "filter":
            q["normalization"] = mach.normalization
        if mach.lexical_window is not None and mach.normalization == "min_max" and method != "filter":
            q["lexical_window"] = mach.lexical_window
    return {"mach": q}


def run_queries(node: Node, index: str, judged: Dict[str, Dict[str, float]], methods: Sequence[str],
                fields: Sequence[str], mach: MachSettings, progress: bool = True):
    """run_searches with each method's query (method_query)."""
    queries = {m: (lambda text, m=m: method_query(m, text, fields, mach)) for m in methods}
    return run_searches(node, index, judged, queries, mach.id_field, progress)


def run_searches(node: Node, index: str, judged: Dict[str, Dict[str, float]],
                 queries: Mapping[str, Callable[[str], dict]], id_field: str, progress: bool = True,
                 judged_only: bool = True):
    """Per named query (text -> query DSL), per judged query: ranked ids of the top 100, {judged
    product: score} (the judged-only view; None without judged_only), and the top 100's scores. One
    _msearch per judged query."""
    names = list(queries)
    ranked: Dict[str, List[List[str]]] = {m: [] for m in names}
    judged_scores: Dict[str, List[Optional[Dict[str, float]]]] = {m: [] for m in names}
    scores: Dict[str, List[List[float]]] = {m: [] for m in names}
    per_method = 2 if judged_only else 1
    bar = progress_bar(total=len(judged), desc="queries", unit="q", enabled=progress)
    for text, rels in judged.items():
        lines = []
        for m in names:
            q = queries[m](text)
            lines += [json.dumps({"index": index}),
                      json.dumps({"query": q, "size": 100, "_source": False}, ensure_ascii=False)]
            if judged_only:
                only_judged = {"bool": {"must": [q], "filter": [{"terms": {id_field: sorted(rels)}}]}}
                lines += [json.dumps({"index": index}),
                          json.dumps({"query": only_judged, "size": len(rels), "_source": False}, ensure_ascii=False)]
        resp = node.call("POST", "/_msearch", ndjson="\n".join(lines) + "\n")
        for i, m in enumerate(names):
            answers = resp["responses"][per_method * i: per_method * (i + 1)]
            for r in answers:
                if "error" in r:
                    raise UserError(f"method {m}, query {text!r}: {json.dumps(r['error'])[:600]}")
            full = answers[0]
            ranked[m].append([h["_id"] for h in full["hits"]["hits"]])
            scores[m].append([h["_score"] for h in full["hits"]["hits"]])
            judged_scores[m].append({h["_id"]: h["_score"] for h in answers[1]["hits"]["hits"]} if judged_only else None)
        bar.update(1)
    bar.close()
    return ranked, judged_scores, scores


def score_methods(judged: Dict[str, Dict[str, float]], ranked, judged_scores, gain_offset: float,
                  relevant_min: float) -> Dict[str, Dict[str, float]]:
    out = {}
    rels = list(judged.values())
    for m in ranked:
        per_query = [M.query_metrics(ranked[m][i], rels[i], gain_offset, relevant_min, judged_scores[m][i])
                     for i in range(len(rels))]
        out[m] = M.aggregate(per_query)
    return out


def write_rankings(path: str, judged: Dict[str, Dict[str, float]], ranked, scores) -> None:
    """One JSON line per query: its judgments and, per method, the top 100 as [id, score] pairs
    (for per-query analysis and offline fusion experiments)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (text, rels) in enumerate(judged.items()):
            hits = {m: [[pid, sc] for pid, sc in zip(ranked[m][i], scores[m][i])] for m in ranked}
            f.write(json.dumps({"query": text, "judged": rels, "hits": hits}, ensure_ascii=False) + "\n")


def over_seeds(per_seed: Sequence[Dict[str, Dict[str, float]]]):
    """Results of several index seeds -> (mean per method and metric, (min, max) per method and metric)."""
    mean: Dict[str, Dict[str, float]] = {}
    spread: Dict[str, Dict[str, tuple]] = {}
    for m in per_seed[0]:
        mean[m], spread[m] = {}, {}
        for k in per_seed[0][m]:
            vals = [r[m][k] for r in per_seed]
            mean[m][k] = sum(vals) / len(vals)
            spread[m][k] = (min(vals), max(vals))
    return mean, spread


def summary_line(results: Dict[str, Dict[str, float]], n_queries: int, seeds: Sequence[int] = (0,),
                 spread: Optional[Dict[str, Dict[str, tuple]]] = None) -> str:
    methods = {m: {JSON_KEYS[k]: round(v, 4) for k, v in r.items() if k in JSON_KEYS} for m, r in results.items()}
    out = {"queries": n_queries, "index_seeds": list(seeds), "methods": methods}
    if spread is not None:
        out["spread"] = {m: {JSON_KEYS[k]: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in r.items() if k in JSON_KEYS}
                         for m, r in spread.items()}
    return json.dumps(out)


def format_spread(spread: Dict[str, Dict[str, tuple]]) -> str:
    """Per method, each metric's min..max over the seeds."""
    cols = [c for c in M.METRIC_NAMES if any(c in r for r in spread.values())]
    width = max([len("spread")] + [len(m) for m in spread])
    lines = ["  ".join(["spread".ljust(width)] + [c.rjust(15) for c in cols])]
    for m, r in spread.items():
        lines.append("  ".join([m.ljust(width)] + [(f"{r[c][0]:.4f}..{r[c][1]:.4f}" if c in r else "-").rjust(15) for c in cols]))
    return "\n".join(lines)


def plot(results: Dict[str, Dict[str, float]], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n in ["NDCG@10", "judged_NDCG@10", "recall@100", "MRR@10", "P@1"] if any(n in r for r in results.values())]
    methods = list(results)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, m in enumerate(methods):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [results[m].get(n, 0.0) for n in names], width, label=m)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
    ax.set_xticklabels(names)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(ncol=len(methods), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_seeds(text: str) -> List[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--index-seeds takes comma-separated integers, got {text!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--index-seeds needs distinct seeds, got {text!r}")
    return seeds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:9200", help="the node (default http://127.0.0.1:9200)")
    p.add_argument("--judgments", required=True, help="TSV: query, product_id, relevance")
    p.add_argument("--bundle", help="model bundle to deploy first over REST (uploaded in chunks, registered, deployed; "
                                     "skipped when the cluster already has this bundle under --model-id)")
    p.add_argument("--model-id", required=True, help="model id the queries name")
    p.add_argument("--index", help="index name prefix (default: the model id + '-eval'); the index of seed S is PREFIX-sS")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--index-seed", type=int, default=0,
                       help="index the catalog in this seed's shuffled order (default 0): score ties fall in random order")
    seeds.add_argument("--index-seeds", help="comma-separated seeds (e.g. 0,1,2): one index and one run each; "
                                             "reports each metric's mean and min..max over them")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--top-n", type=int, default=200, help="MACH candidates per query (default 200)")
    p.add_argument("--mach-weight", type=float, help="mach_weight of boost/hybrid (default: the plugin's)")
    p.add_argument("--normalization", choices=["none", "min_max"], help="boost/hybrid normalization (default: the plugin's)")
    p.add_argument("--lexical-window", type=int,
                   help="min_max: top hits that give each side's score range (default: the plugin's, top_n); index-side, "
                        "a document below MACH's window gets 0 from MACH, so the window bounds per-document fusion")
    p.add_argument("--decoding", choices=["auto", "exact", "candidates"],
                   help="the mach query's decoding (default: the plugin's, auto)")
    p.add_argument("--normalize", action="store_true", help="the mach query's normalize: scores / top score")
    p.add_argument("--min-repetitions", type=int, help="candidate decoding: a product must be in f repetitions' top buckets")
    p.add_argument("--buckets-per-repetition", type=int, help="candidate decoding: m top buckets per repetition")
    p.add_argument("--index-side", action="store_true",
                   help="index-side MACH: index a mach_buckets field of the model's hash family (copy_to from "
                        "the product-id field) and query it with bucket_field instead of product_id_field")
    p.add_argument("--bucket-field", default="mach_buckets", help="--index-side: the bucket field's name (default mach_buckets)")
    p.add_argument("--hash-family", help="--index-side: the family to index (default: the deployed model card's product_hash family)")
    p.add_argument("--scored-buckets", type=int,
                   help="--index-side: the mach query's scored_buckets (top bucket probabilities sent per repetition; "
                        "default: the plugin's, the whole table up to R x B = 65,536)")
    p.add_argument("--limit", type=int, help="only the first N judged queries")
    p.add_argument("--out", help="write the full results JSON here")
    p.add_argument("--plot", help="write a bar chart PNG here")
    p.add_argument("--rankings", help="write every query's top 100 per method (ids and scores, JSON lines) here (one seed only)")
    p.add_argument("--no-progress", action="store_true")


def index_side_field(node: Node, args) -> BucketField:
    """The bucket field of --index-side: --hash-family, else the family of the card the node serves
    under --model-id (after --bundle deployed it)."""
    from mach_tools.featurize import HashFamily, card_family
    if args.scored_buckets is not None and args.scored_buckets < 1:
        raise UserError(f"--scored-buckets must be at least 1, got {args.scored_buckets}")
    if args.hash_family:
        try:
            return BucketField(args.bucket_field, HashFamily.parse(args.hash_family).name)
        except ValueError as e:
            raise UserError(f"--hash-family: {e}")
    served = node.call("GET", f"/_plugins/_mach/models/{args.model_id}", ok404=True)
    if served is None or "card" not in served:
        raise UserError(f"--index-side needs model [{args.model_id}]'s hash family: deploy it (--bundle) or give --hash-family")
    try:
        family = card_family(served["card"].get("product_hash", {}))
    except ValueError as e:
        raise UserError(f"model [{args.model_id}]: {e}")
    if family is None:
        raise UserError(f"model [{args.model_id}]'s product hash is not a hash family's (seeds (s + 7919 r) mod 2^32): "
                        "it cannot serve index-side queries")
    return BucketField(args.bucket_field, family.name)


def run(args, catalog: Catalog, gain_offset: float, relevant_min: float, node: Optional[Node] = None) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise UserError(f"unknown method(s) {bad}; choose from {METHODS}")
    seeds = parse_seeds(args.index_seeds) if args.index_seeds else [args.index_seed]
    if args.rankings and len(seeds) > 1:
        raise UserError("--rankings writes one run's rankings: give it with a single --index-seed")
    if args.lexical_window is not None and args.normalization != "min_max":
        raise UserError("--lexical-window applies only with --normalization min_max")
    if not args.index_side and (args.hash_family or args.scored_buckets is not None):
        raise UserError("--hash-family and --scored-buckets apply only with --index-side")
    if args.bundle:
        from mach_tools.deploy import ensure_deployed
        ensure_deployed(args.url, args.bundle, args.model_id, progress=not args.no_progress)
    judged = judgments_by_query(read_pairs(args.judgments))
    if args.limit:
        judged = dict(list(judged.items())[:args.limit])
    node = node or Node(args.url)
    bucket_field = index_side_field(node, args) if args.index_side else None
    base = args.index or f"{args.model_id}-eval" + ("-buckets" if bucket_field else "")
    progress = not args.no_progress
    mach = MachSettings(args.model_id, args.id_field, args.top_n, args.mach_weight, args.decoding, args.normalize,
                        args.min_repetitions, args.buckets_per_repetition, args.normalization,
                        lexical_window=args.lexical_window, bucket_field=bucket_field.name if bucket_field else None,
                        scored_buckets=args.scored_buckets)
    t0 = time.time()
    per_seed = []
    for seed in seeds:
        index = seeded_index(base, seed)
        index_catalog(node, index, catalog, args.id_field, seed=seed, progress=progress, bucket_field=bucket_field)
        ranked, judged_scores, scores = run_queries(node, index, judged, methods, catalog.field_names, mach, progress)
        per_seed.append(score_methods(judged, ranked, judged_scores, gain_offset, relevant_min))
    secs = time.time() - t0
    results, spread = over_seeds(per_seed)
    print(M.format_table(results))
    if len(seeds) > 1:
        print(f"mean over index seeds {seeds}; min..max:")
        print(format_spread(spread))
    print(f"{len(judged)} queries x {len(methods)} methods x {len(seeds)} index order(s) in {secs:.1f}s; gain = relevance - "
          f"{gain_offset:g}, relevant >= {relevant_min:g}; mach top_n {args.top_n}, "
          f"mach_weight {args.mach_weight or 'plugin default'}, normalization {args.normalization or 'plugin default'}"
          + (f"; index-side: {bucket_field.name} ({bucket_field.hash_family}), scored_buckets "
             f"{args.scored_buckets or 'plugin default'}" if bucket_field else ""))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"judgments": args.judgments, "model_id": args.model_id, "indices": [seeded_index(base, s) for s in seeds],
                       "index_seeds": seeds, "top_n": args.top_n, "mach_weight": args.mach_weight,
                       "normalization": args.normalization, "lexical_window": args.lexical_window, "results": results, "spread": spread,
                       "index_side": {"bucket_field": bucket_field.name, "hash_family": bucket_field.hash_family,
                                      "scored_buckets": args.scored_buckets} if bucket_field else None,
                       "per_seed": per_seed}, f, indent=1)
    if args.rankings:
        write_rankings(args.rankings, judged, ranked, scores)
    if args.plot:
        plot(results, args.plot, f"{args.model_id}: {len(judged)} queries")
    print(summary_line(results, len(judged), seeds, spread))
    return 0
