#!/usr/bin/env python3
"""Load generator for a running node with the mach plugin: BM25 alone and each `mach` mode in ONE run.

N client threads send `_search` requests over loopback for a fixed time per method; the methods run
back to back in several rounds (bm25, mach, filter, boost, hybrid, bm25, mach, ...) so that the noise
of a shared machine falls on all of them alike. Per method: requests, errors, QPS, mean, p50, p99 of
the client-side latency, and the ratios against BM25 measured in the same run.

Methods: `bm25` (a `match` on the text field); `mach`, `filter`, `boost`, `hybrid`: the `mach` query
with `product_id_field` (the coordinator decodes the model's top_n products from its catalog and
sends their ids to the shards); `index-mach`, `index-filter`, `index-boost`, `index-hybrid`: the same
with `bucket_field` (index-side: the shards find and score documents from their stored buckets; needs
an index with a mach_buckets field, `--bucket-field`). With `--bucket-field` every method runs by
default, else the product_id_field ones.

Phases:
  uncached  the plugin's result cache off (`mach.cache.size: 0`, set through _cluster/settings): every
            mach query runs featurize + ONNX Runtime + decode. The main figures.
  cached    cache on (`--cache-size`), after one warm-up pass over `--cached-queries` query texts that
            the measured requests then repeat: the cost of a hit.

  loadgen.py --url http://127.0.0.1:9200 --index hd --model-id hd --queries judgments-dev.tsv \\
      --clients 4 --seconds 20 --rounds 2 --json out.json

Python standard library only. Refuses any host but loopback. Bounded: --seconds per method and
round, --max-requests per method and round, a per-request timeout.
"""
import argparse
import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

TOP_N_METHODS = ["mach", "filter", "boost", "hybrid"]
INDEX_SIDE_METHODS = ["index-" + m for m in TOP_N_METHODS]
METHODS = ["bm25"] + TOP_N_METHODS + INDEX_SIDE_METHODS
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class UserError(Exception):
    pass


def call(url, method, path, body=None, timeout=60.0):
    data = json.dumps(body).encode("utf-8") if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raise UserError(f"{method} {path}: HTTP {e.code}: {e.read().decode('utf-8', 'replace')[:500]}")
    except urllib.error.URLError as e:
        raise UserError(f"cannot reach {url} ({e.reason}); is the node running?")


def read_queries(path, limit):
    """Distinct query texts from the first column of a TSV with a header, in file order."""
    seen, out = set(), []
    with open(path, encoding="utf-8") as f:
        next(f, None)
        for line in f:
            q = line.rstrip("\n").split("\t")[0].strip()
            if q and q not in seen:
                seen.add(q)
                out.append(q)
                if limit and len(out) >= limit:
                    break
    if not out:
        raise UserError(f"{path}: no queries (expected a TSV with a header, the query text first)")
    return out


def json_object(text):
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def body_for(method, text, args):
    lexical = {"match": {args.text_field: text}}
    if method == "bm25":
        query = lexical
    else:
        mode = method.removeprefix("index-")
        if method in INDEX_SIDE_METHODS:
            # top_n and decoding do not apply: the shards rank by score
            mach = {"model_id": args.model_id, "query_text": text, "bucket_field": args.bucket_field, **args.index_options}
        else:
            mach = {"model_id": args.model_id, "query_text": text, "product_id_field": args.id_field, "top_n": args.top_n,
                    **args.mach_options}
        if mode != "mach":
            mach.update({"lexical": lexical, "combine": mode})
        query = {"mach": mach}
    return {"query": query, "size": args.size, "_source": False, "track_total_hits": False}


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


class Counter:
    """Hands the clients query texts in order (cycling) under a lock."""

    def __init__(self, queries, start=0):
        self.queries, self.i, self.lock = queries, start, threading.Lock()

    def next(self):
        with self.lock:
            q = self.queries[self.i % len(self.queries)]
            self.i += 1
            return q


def run_method(args, method, queries, seconds, max_requests, start_index):
    """N clients, `seconds` long (or max_requests in all); returns latencies (ms), errors, elapsed s, next index."""
    path = f"/{urllib.parse.quote(args.index)}/_search"
    counter = Counter(queries, start_index)
    latencies, errors, lock = [], [], threading.Lock()
    sent = [0]
    deadline = time.perf_counter() + seconds

    def client():
        while time.perf_counter() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    return
                sent[0] += 1
            data = json.dumps(body_for(method, counter.next(), args)).encode("utf-8")
            req = urllib.request.Request(args.url + path, data=data, method="POST", headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=args.timeout) as resp:
                    resp.read()
                ms = (time.perf_counter() - t0) * 1000.0
                with lock:
                    latencies.append(ms)
            except Exception as e:  # counted and shown, never fatal: a benchmark reports what happened
                with lock:
                    errors.append(f"{type(e).__name__}: {getattr(e, 'code', '')} {str(e)[:200]}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + args.timeout + 5)
    return latencies, errors, time.perf_counter() - t0, counter.i


def set_cache(args, size):
    call(args.url, "PUT", "/_cluster/settings", {"transient": {"mach.cache.size": size}})


def cache_stats(args):
    r = call(args.url, "GET", f"/_plugins/_mach/models/{urllib.parse.quote(args.model_id)}", timeout=300)
    return r.get("cache", {})


def phase(args, name, queries, methods):
    """Rounds of all methods back to back; returns {method: stats}."""
    lat = {m: [] for m in methods}
    errs = {m: [] for m in methods}
    elapsed = {m: 0.0 for m in methods}
    index = 0
    for rnd in range(args.rounds):
        for m in methods:
            # every method sees the same query texts in the same order in a round
            l, e, t, _ = run_method(args, m, queries, args.seconds, args.max_requests, index)
            lat[m] += l
            errs[m] += e
            elapsed[m] += t
            print(f"[{name}] round {rnd + 1}/{args.rounds} {m:7s} {len(l):6d} ok {len(e):4d} errors "
                  f"{len(l) / t:8.1f} qps p50 {percentile(sorted(l), 0.5):7.2f} ms", file=sys.stderr)
        index += max(len(lat[methods[0]]), 1)  # next round starts further down the query list
    out = {}
    for m in methods:
        s = sorted(lat[m])
        out[m] = {"requests": len(s), "errors": len(errs[m]), "first_error": errs[m][0] if errs[m] else None,
                  "seconds": round(elapsed[m], 2), "qps": round(len(s) / elapsed[m], 1) if elapsed[m] else 0.0,
                  "mean_ms": round(statistics.fmean(s), 2) if s else None,
                  "p50_ms": round(percentile(s, 0.5), 2), "p99_ms": round(percentile(s, 0.99), 2)}
    base = out.get("bm25")
    if base and base["requests"]:
        for m in methods:
            o = out[m]
            if o["requests"]:
                o["p50_minus_bm25_ms"] = round(o["p50_ms"] - base["p50_ms"], 2)
                o["p50_ratio"] = round(o["p50_ms"] / base["p50_ms"], 2)
                o["p99_ratio"] = round(o["p99_ms"] / base["p99_ms"], 2)
                o["qps_ratio"] = round(o["qps"] / base["qps"], 2)
    return out


def table(name, stats):
    lines = [f"### {name}", "",
             "| method | requests | errors | QPS | mean ms | p50 ms | p99 ms | p50 - BM25 | p50 / BM25 | p99 / BM25 | QPS / BM25 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, o in stats.items():
        lines.append(f"| {m} | {o['requests']} | {o['errors']} | {o['qps']} | {o['mean_ms']} | {o['p50_ms']} | {o['p99_ms']} | "
                     f"{o.get('p50_minus_bm25_ms', '')} | {o.get('p50_ratio', '')} | {o.get('p99_ratio', '')} | {o.get('qps_ratio', '')} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="node URL (loopback only)")
    p.add_argument("--index", required=True)
    p.add_argument("--model-id", required=True)
    p.add_argument("--queries", required=True, help="TSV with a header, query text first (e.g. judgments-dev.tsv)")
    p.add_argument("--id-field", default="product_id")
    p.add_argument("--text-field", default="title", help="field of the BM25 match (and the mach lexical part)")
    p.add_argument("--methods", help=f"comma-separated, of {', '.join(METHODS)} (default: see above)")
    p.add_argument("--bucket-field", help="the index's mach_buckets field, for the index-* methods")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0, help="per method and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-requests", type=int, default=100_000, help="per method and round")
    p.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--top-n", type=int, default=100)
    p.add_argument("--size", type=int, default=10)
    p.add_argument("--mach-options", type=json_object, default={},
                   help='more mach query parameters for the product_id_field methods, as JSON, e.g. \'{"min_repetitions": 2}\'')
    p.add_argument("--index-options", type=json_object, default={},
                   help='more mach query parameters for the index-* methods, as JSON, e.g. \'{"buckets_per_repetition": 5}\'')
    p.add_argument("--max-queries", type=int, default=0, help="distinct query texts used (0 = all)")
    p.add_argument("--warmup-seconds", type=float, default=10.0, help="untimed, all methods, before the phases")
    p.add_argument("--phases", default="uncached,cached")
    p.add_argument("--cache-size", type=int, default=10_000, help="mach.cache.size of the cached phase")
    p.add_argument("--cached-queries", type=int, default=200, help="distinct texts repeated in the cached phase")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    try:
        host = urllib.parse.urlparse(args.url).hostname
        if host not in LOOPBACK:
            raise UserError(f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))}), got [{host}]")
        if not (1 <= args.clients <= 64):
            raise UserError("--clients must be between 1 and 64")
        if not (0 < args.seconds <= 600) or not (1 <= args.rounds <= 20):
            raise UserError("--seconds must be in (0, 600] and --rounds in [1, 20]")
        if args.methods is None:
            args.methods = ",".join(METHODS if args.bucket_field else ["bm25"] + TOP_N_METHODS)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise UserError(f"unknown methods {bad}; known: {METHODS}")
        if not args.bucket_field and any(m in INDEX_SIDE_METHODS for m in methods):
            raise UserError("the index-* methods need --bucket-field (the index's mach_buckets field)")
        phases = [x.strip() for x in args.phases.split(",") if x.strip()]
        if any(x not in ("uncached", "cached") for x in phases):
            raise UserError("--phases: uncached and/or cached")
        args.url = args.url.rstrip("/")
        queries = read_queries(args.queries, args.max_queries)
        info = call(args.url, "GET", "/")
        model = call(args.url, "GET", f"/_plugins/_mach/models/{urllib.parse.quote(args.model_id)}", timeout=300)  # loads it
        count = call(args.url, "GET", f"/{urllib.parse.quote(args.index)}/_count")["count"]
        result = {"node": info.get("version", {}).get("number"), "index": args.index, "docs": count,
                  "model": {k: model.get(k) for k in ("model_id", "R", "B", "products", "device", "load_ms")},
                  "clients": args.clients, "seconds_per_method_round": args.seconds, "rounds": args.rounds,
                  "top_n": args.top_n, "mach_options": args.mach_options, "bucket_field": args.bucket_field,
                  "index_options": args.index_options, "size": args.size, "distinct_queries": len(queries), "phases": {}}

        set_cache(args, 0)
        if args.warmup_seconds > 0:  # JIT, ORT, Lucene caches
            for m in methods:
                run_method(args, m, queries[::-1], args.warmup_seconds / len(methods), args.max_requests, 0)
        for ph in phases:
            if ph == "uncached":
                set_cache(args, 0)
                stats = phase(args, ph, queries, methods)
                result["phases"][ph] = {"mach.cache.size": 0, "methods": stats}
            else:
                set_cache(args, args.cache_size)
                hot = queries[: args.cached_queries]
                for m in methods:  # one pass fills the cache for every mode's decoding options
                    run_method(args, m, hot, 600, len(hot), 0)
                stats = phase(args, ph, hot, methods)
                result["phases"][ph] = {"mach.cache.size": args.cache_size, "distinct_queries": len(hot),
                                        "cache": cache_stats(args), "methods": stats}
        set_cache(args, None)  # back to the node's own setting
    except UserError as e:
        print(f"loadgen: {e}", file=sys.stderr)
        return 2
    head = (f"{result['docs']} docs, model R={result['model']['R']} B={result['model']['B']} K={result['model']['products']}, "
            f"{args.clients} clients, {args.rounds} x {args.seconds:g} s per method, top_n {args.top_n}, size {args.size}"
            + (f", index-* methods: bucket_field {args.bucket_field} {json.dumps(args.index_options)}" if args.bucket_field else ""))
    print(head)
    for ph, r in result["phases"].items():
        print()
        print(table(f"{ph} (mach.cache.size {r['mach.cache.size']})", r["methods"]))
        if "cache" in r:
            print(f"\ncache after the phase: {json.dumps(r['cache'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
