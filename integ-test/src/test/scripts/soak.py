#!/usr/bin/env python3
"""Lifecycle soak and crash checks against one running node (soak.sh starts it; loopback only).

  soak.py soak  --node-dir D --bundle ZIP --index I --queries TSV [--redeploys 4] [--clients 2]
      Queries run without pause through an alias (a `mach` search on index I, bound to the alias by
      index.mach.model, and `_predict` through the alias) while the bundle is deployed again and
      again under alternating ids (chunked upload, register + deploy, alias swap, undeploy and
      delete of the old id). Counts queries, failures (any non-200) and wrong answers (top hits
      other than the first answer for the same text: every deploy is the same bundle), samples the
      heap and the parent circuit breaker, and checks that nothing is left behind (uploads, chunks,
      temporary files).
  soak.py crash --node-dir D --dist DIST --plugin ZIP --bundle ZIP --index I --queries TSV
      kill -9 of the node mid-upload, mid-register (upload and path) and mid-deploy; after each
      restart (data kept) every model, alias and index binding must be back, the interrupted
      upload listed by GET _plugins/_mach/uploads and reclaimable, a register retryable, a deploy
      finished by the node itself, and no temporary bundle file left in <data>/mach-tmp.

Both print one line per finding and a summary; exit status 1 when a check failed. Standard library
plus model-tools' deploy helpers (run with /usr/bin/python3).
"""
import argparse
import base64
import glob
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "..", "model-tools"))
from mach_tools import deploy as D  # noqa: E402
from mach_tools.engine_eval import Node as ENode  # noqa: E402

ALIAS = "soak"
IDS = ("soak-a", "soak-b")


class Node:
    """A node home made by node.sh: its URL, pid and data path come from the files node.sh writes."""

    def __init__(self, node_dir):
        self.dir = os.path.realpath(node_dir)

    @property
    def url(self):
        with open(os.path.join(self.dir, "http.port")) as f:
            return f"http://127.0.0.1:{f.read().strip()}"

    @property
    def pid(self):
        with open(os.path.join(self.dir, "node.pid")) as f:
            return int(f.read().strip())

    def tmp_files(self):
        """Files under every <data>/nodes/*/mach-tmp (temporary bundle zips and extracted bundles)."""
        out = []
        for root in glob.glob(os.path.join(self.dir, "data", "nodes", "*", "mach-tmp")) + glob.glob(
                os.path.join(self.dir, "data", "mach-tmp")):
            for d, _, files in os.walk(root):
                out += [os.path.join(d, f) for f in files]
        return out

    def call(self, method, path, body=None, timeout=120.0):
        """(status, parsed JSON or text) without raising on HTTP errors."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, json.loads(raw or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read().decode("utf-8", "replace")
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw

    def ok(self, method, path, body=None, timeout=600.0):
        status, out = self.call(method, path, body, timeout)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {str(out)[:600]}")
        return out


def read_queries(path, limit=400):
    seen, out = set(), []
    with open(path, encoding="utf-8") as f:
        next(f, None)
        for line in f:
            q = line.split("\t")[0].strip()
            if q and q not in seen:
                seen.add(q)
                out.append(q)
                if len(out) >= limit:
                    break
    return out


class Load:
    """Client threads querying through the alias without pause; every answer checked."""

    def __init__(self, node, index, queries, clients):
        self.node, self.index, self.queries, self.clients = node, index, queries, clients
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.failures = []  # (time, phase, kind, status, body)
        self.wrong = []
        self.first = {}  # (kind, text) -> top hit ids of the first answer
        self.latencies = []
        self.phase = "warm-up"
        self.threads = []

    def one(self, rng):
        text = rng.choice(self.queries)
        if rng.random() < 0.5:
            kind = "search"
            status, out = self.node.call("POST", f"/{self.index}/_search", {
                "size": 10, "_source": False,
                "query": {"mach": {"query_text": text, "combine": "hybrid", "lexical": {"match": {"title": text}}}}},
                timeout=60)
            ids = [h["_id"] for h in out["hits"]["hits"]] if status == 200 else None
        else:
            kind = "predict"
            status, out = self.node.call("POST", f"/_plugins/_mach/models/{ALIAS}/_predict",
                                         {"query_text": text, "top_n": 10}, timeout=60)
            ids = [p.get("product_id", p.get("id")) for p in out.get("products", out.get("predictions", []))] \
                if status == 200 and isinstance(out, dict) else None
        return kind, text, status, out, ids

    def client(self, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                kind, text, status, out, ids = self.one(rng)
            except Exception as e:  # a refused connection, a timeout: a failed query too
                kind, text, status, out, ids = "?", "", 0, repr(e), None
            ms = (time.monotonic() - t0) * 1000
            with self.lock:
                self.requests += 1
                self.latencies.append(ms)
                if status != 200:
                    self.failures.append((time.strftime("%H:%M:%S"), self.phase, kind, status, str(out)[:300]))
                    continue
                key = (kind, text)
                if key not in self.first:
                    self.first[key] = ids
                elif self.first[key] != ids:
                    self.wrong.append((self.phase, kind, text, self.first[key][:3], ids[:3]))

    def start(self):
        for i in range(self.clients):
            t = threading.Thread(target=self.client, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)


class Sampler:
    """Heap used, parent breaker and node RSS every `every` seconds; the peaks and trips."""

    def __init__(self, node, every=0.25):
        self.node, self.every = node, every
        self.stop = threading.Event()
        self.heap_peak = 0
        self.heap_max = 0
        self.rss_peak = 0
        self.parent_peak = 0
        self.tripped = {}
        self.samples = 0
        self.phase_peak = {}  # load phase -> heap peak
        self.load = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                s = self.node.ok("GET", "/_nodes/_local/stats/jvm,breaker", timeout=10)
                n = next(iter(s["nodes"].values()))
                mem = n["jvm"]["mem"]
                self.heap_peak = max(self.heap_peak, mem["heap_used_in_bytes"])
                if self.load is not None:
                    ph = self.load.phase.split(": ", 1)[-1].split(" ")[0]
                    self.phase_peak[ph] = max(self.phase_peak.get(ph, 0), mem["heap_used_in_bytes"])
                self.heap_max = mem["heap_max_in_bytes"]
                self.parent_peak = max(self.parent_peak, n["breakers"]["parent"]["estimated_size_in_bytes"])
                self.tripped = {k: v["tripped"] for k, v in n["breakers"].items() if v["tripped"]}
                with open(f"/proc/{self.node.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.rss_peak = max(self.rss_peak, int(line.split()[1]) * 1024)
                self.samples += 1
            except Exception:
                pass
            self.stop.wait(self.every)

    def summary(self):
        mb = 1 << 20
        return (f"heap peak {self.heap_peak / mb:.0f} MB of {self.heap_max / mb:.0f} MB "
                f"({100 * self.heap_peak / max(1, self.heap_max):.0f}%), parent breaker peak {self.parent_peak / mb:.0f} MB, "
                f"RSS peak {self.rss_peak / mb:.0f} MB, breakers tripped {self.tripped or 0} ({self.samples} samples)")


def upload(node, zip_path, chunk_mb=8.0, stop_after=None):
    """Uploads in chunks like `mach_tools deploy`; returns (upload_id, chunks, sha256)."""
    chunk = int(chunk_mb * (1 << 20))
    size = os.path.getsize(zip_path)
    chunks = max(1, math.ceil(size / chunk))
    whole = hashlib.sha256()
    upload_id = node.ok("POST", "/_plugins/_mach/uploads")["upload_id"]
    en = ENode(node.url, timeout=600.0)
    with open(zip_path, "rb") as f:
        for i in range(chunks):
            data = f.read(chunk)
            whole.update(data)
            D.put_chunk(en, upload_id, i, data)
            if stop_after is not None and i + 1 >= stop_after:
                return upload_id, chunks, None
    return upload_id, chunks, whole.hexdigest()


def deploy_under(node, zip_path, model_id):
    upload_id, chunks, sha = upload(node, zip_path)
    return node.ok("POST", f"/_plugins/_mach/models/{model_id}/_register",
                   {"upload_id": upload_id, "chunks": chunks, "sha256": sha, "deploy": True})


def registered(node):
    return node.ok("GET", "/_plugins/_mach/models")["registered"]


def leftovers(node, models_expected):
    """What should not be there: uploads, chunks no model owns, temporary files. Returns problems."""
    problems = []
    ups = node.ok("GET", "/_plugins/_mach/uploads")["uploads"]
    if ups:
        problems.append(f"uploads left: {ups}")
    reg = registered(node)
    want = sum(m["chunks"] for m in reg.values())
    node.call("POST", "/.plugins-mach-bundles/_refresh")
    status, c = node.call("POST", "/.plugins-mach-bundles/_count", {"query": {"exists": {"field": "chunk"}}})
    stored = c.get("count") if status == 200 else None
    if stored != want:
        problems.append(f"system index holds {stored} chunks, the registered models {sorted(reg)} own {want}")
    # every document (upload record, chunk, part) belongs to a model: one storage id per model
    status, agg = node.call("POST", "/.plugins-mach-bundles/_search",
                            {"size": 0, "aggs": {"ids": {"terms": {"field": "storage_id", "size": 1000}}}})
    ids = [b["key"] for b in agg["aggregations"]["ids"]["buckets"]] if status == 200 else None
    if ids is None or len(ids) != len(reg):
        problems.append(f"system index holds documents of {ids} storage ids, for {len(reg)} registered models")
    if sorted(reg) != sorted(models_expected):
        problems.append(f"registered models {sorted(reg)}, expected {sorted(models_expected)}")
    tmp = node.tmp_files()
    if tmp:
        problems.append(f"temporary files left: {tmp}")
    return problems, stored


def wait_deployed(node, model_id, seconds=300):
    end = time.time() + seconds
    while time.time() < end:
        status, m = node.call("GET", f"/_plugins/_mach/models/{model_id}")
        if status == 200 and m.get("nodes") and all(v.get("state") == "deployed" for v in m["nodes"].values()):
            return m
        time.sleep(1)
    raise RuntimeError(f"model [{model_id}] not deployed after {seconds} s: {m}")


def setup(node, zip_path, index, model_id=IDS[0]):
    """Model deployed under IDS[0] (unless some soak model is), the alias on it, the index bound to the alias."""
    reg = registered(node)
    have = [i for i in IDS if i in reg]
    if not have:
        deploy_under(node, zip_path, model_id)
        have = [model_id]
    current = have[0]
    if not reg.get(current, {}).get("deployed", True):
        node.ok("POST", f"/_plugins/_mach/models/{current}/_deploy")
    wait_deployed(node, current)  # a node just started is still loading it
    node.ok("PUT", f"/_plugins/_mach/aliases/{ALIAS}", {"model_id": current})
    node.ok("PUT", f"/{index}/_settings", {"index": {"mach.model": ALIAS, "mach.product_id_field": "product_id"}})
    return current


def cmd_soak(args):
    node = Node(args.node_dir)
    queries = read_queries(args.queries)
    current = setup(node, args.bundle, args.index)
    print(f"soak: {os.path.getsize(args.bundle) / (1 << 20):.0f} MB bundle, alias [{ALIAS}] -> [{current}], "
          f"{args.clients} client(s), {args.redeploys} redeploys", flush=True)
    sampler = Sampler(node)
    load = Load(node, args.index, queries, args.clients)
    sampler.load = load
    sampler.thread.start()
    load.start()
    time.sleep(args.settle)
    t_start = time.time()
    for n in range(args.redeploys):
        new = IDS[1] if current == IDS[0] else IDS[0]
        t0 = time.time()
        load.phase = f"{n + 1}: upload {new}"
        upload_id, chunks, sha = upload(node, args.bundle)
        load.phase = f"{n + 1}: register {new}"
        node.ok("POST", f"/_plugins/_mach/models/{new}/_register", {"upload_id": upload_id, "chunks": chunks, "sha256": sha})
        load.phase = f"{n + 1}: deploy {new}"
        node.ok("POST", f"/_plugins/_mach/models/{new}/_deploy")
        t1 = time.time()
        load.phase = f"{n + 1}: alias -> {new}"
        node.ok("PUT", f"/_plugins/_mach/aliases/{ALIAS}", {"model_id": new})
        load.phase = f"{n + 1}: undeploy+delete {current}"
        node.ok("POST", f"/_plugins/_mach/models/{current}/_undeploy")
        node.ok("DELETE", f"/_plugins/_mach/models/{current}")
        print(f"soak: redeploy {n + 1}/{args.redeploys}: [{new}] deployed in {t1 - t0:.0f} s, alias swapped, "
              f"[{current}] deleted; {load.requests} queries, {len(load.failures)} failed so far; {sampler.summary()}",
              flush=True)
        current = new
        load.phase = f"{n + 1}: steady"
        time.sleep(args.settle)
    load.finish()
    sampler.stop.set()
    sampler.thread.join(5)
    elapsed = time.time() - t_start + args.settle
    lat = sorted(load.latencies)
    p50 = lat[len(lat) // 2] if lat else 0
    p99 = lat[int(len(lat) * 0.99)] if lat else 0
    problems, stored = leftovers(node, [current])
    print(f"soak: {load.requests} queries in {elapsed:.0f} s ({p50:.0f} ms p50, {p99:.0f} ms p99), "
          f"{len(load.failures)} failed, {len(load.wrong)} wrong; {sampler.summary()}")
    by = {}
    for f in load.failures:
        by.setdefault((f[3], f[1]), []).append(f)
    for (status, phase), fs in sorted(by.items(), key=lambda x: str(x[0])):
        print(f"soak:   {len(fs)} x HTTP {status} during [{phase}]: {fs[0][4][:240]}")
    for w in load.wrong[:5]:
        print(f"soak:   wrong answer during [{w[0]}] {w[1]} {w[2]!r}: first {w[3]}, now {w[4]}")
    for p in problems:
        print(f"soak:   LEFT BEHIND: {p}")
    print("soak: heap peak by step: " + ", ".join(f"{k} {v / (1 << 20):.0f} MB" for k, v in sampler.phase_peak.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"queries": load.requests, "failed": len(load.failures), "wrong": len(load.wrong),
                       "redeploys": args.redeploys, "seconds": round(elapsed), "p50_ms": round(p50, 1),
                       "p99_ms": round(p99, 1), "heap_peak_bytes": sampler.heap_peak, "heap_max_bytes": sampler.heap_max,
                       "parent_breaker_peak_bytes": sampler.parent_peak, "rss_peak_bytes": sampler.rss_peak,
                       "breakers_tripped": sampler.tripped,
                       "heap_peak_by_step": sampler.phase_peak, "left_behind": problems,
                       "failures": load.failures[:50]}, f, indent=1)
    return 0 if not load.failures and not load.wrong and not problems else 1


# ---------------------------------------------------------------- crash


def node_sh(args, *cmd):
    env = dict(os.environ, MACH_NODE_WATCH_PID="0")
    subprocess.run([os.path.join(HERE, "node.sh"), *cmd], check=True, env=env, stdout=sys.stderr)


KILLED_TMPDIRS = []


def kill9(node):
    global KILLED_TMPDIRS
    pid = node.pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:  # the JVM's java.io.tmpdir: OpenSearch makes one per start
        KILLED_TMPDIRS += [a.split("=", 1)[1] for a in f.read().decode().split("\0") if a.startswith("-Djava.io.tmpdir=")]
    os.kill(pid, 9)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    os.remove(os.path.join(node.dir, "node.pid"))  # as after a crash: node.sh must not try to stop it


def restart(args, node):
    t0 = time.time()
    node_sh(args, "start", args.dist, args.node_dir, args.plugin)
    return time.time() - t0


def wait_for(cond, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def check_serving(node, index, queries, baseline):
    """The alias, the binding and the model are back: same top hits as before the crash."""
    problems = []
    wait_deployed(node, ALIAS, 300)
    for text in queries:
        status, out = node.call("POST", f"/{index}/_search", {
            "size": 10, "_source": False, "query": {"mach": {"query_text": text}}})
        if status != 200:
            problems.append(f"query through alias: HTTP {status}: {str(out)[:200]}")
            break
        ids = [h["_id"] for h in out["hits"]["hits"]]
        if baseline is not None and baseline.get(text) != ids:
            problems.append(f"query {text!r}: top hits {ids[:3]} differ from before the crash {baseline.get(text, [])[:3]}")
        if baseline is None:
            pass
    return problems


def top_hits(node, index, queries):
    out = {}
    for text in queries:
        r = node.ok("POST", f"/{index}/_search", {"size": 10, "_source": False, "query": {"mach": {"query_text": text}}})
        out[text] = [h["_id"] for h in r["hits"]["hits"]]
    return out


def cmd_crash(args):
    node = Node(args.node_dir)
    queries = read_queries(args.queries, 20)
    serving = setup(node, args.bundle, args.index)
    baseline = top_hits(node, args.index, queries)
    failed = []

    def report(case, problems, extra=""):
        print(f"crash: {case}: {'OK' if not problems else 'FAILED'}{extra}", flush=True)
        for p in problems:
            print(f"crash:   {p}", flush=True)
        failed.extend(problems)

    # 1. mid-upload: killed while chunks are being sent, once a third of them is stored
    size = os.path.getsize(args.bundle)
    total = math.ceil(size / (8 << 20))
    threading.Thread(target=lambda: _try(upload, node, args.bundle), daemon=True).start()

    def third_stored():
        ups = node.ok("GET", "/_plugins/_mach/uploads")["uploads"]
        return next((u["upload_id"] for u in ups if not u["orphan"] and u["chunks"] >= total // 3), None)

    upload_id = wait_for(third_stored, 300, "a third of the upload")
    kill9(node)
    took = restart(args, node)
    problems = check_serving(node, args.index, queries, baseline)
    ups = node.ok("GET", "/_plugins/_mach/uploads")["uploads"]
    mine = [u for u in ups if u["upload_id"] == upload_id]
    if not mine or mine[0]["chunks"] < total // 3:
        problems.append(f"the interrupted upload is not listed with its chunks: {ups}")
    else:
        st, out = node.call("DELETE", f"/_plugins/_mach/uploads/{upload_id}")
        if st != 200:
            problems.append(f"DELETE of the interrupted upload: HTTP {st} {out}")
    p2, _ = leftovers(node, [serving])
    report("kill -9 mid-upload", problems + p2,
           f" (restart {took:.0f} s; upload listed with {mine[0]['chunks'] if mine else 0} of {total} chunks, deleted)")

    # 2. mid-register (upload): killed while the node assembles / validates the bundle
    upload_id, chunks, sha = upload(node, args.bundle)
    req = threading.Thread(target=lambda: _try(node.call, "POST", "/_plugins/_mach/models/crash-reg/_register",
                                               {"upload_id": upload_id, "chunks": chunks, "sha256": sha}, 600),
                           daemon=True)
    req.start()
    wait_for(lambda: any(os.path.getsize(f) > (64 << 20) for f in node.tmp_files() if os.path.exists(f)), 120,
             "the register's temporary zip")
    kill9(node)
    took = restart(args, node)
    problems = check_serving(node, args.index, queries, baseline)
    if "crash-reg" in registered(node):
        problems.append("crash-reg is registered after a register that never answered")
    ups = node.ok("GET", "/_plugins/_mach/uploads")["uploads"]
    if not any(u["upload_id"] == upload_id and u["chunks"] == chunks for u in ups):
        problems.append(f"the upload of the interrupted register is not kept whole: {ups}")
    # the client retries the same register: it must work from the kept chunks
    st, out = node.call("POST", "/_plugins/_mach/models/crash-reg/_register",
                        {"upload_id": upload_id, "chunks": chunks, "sha256": sha}, timeout=600)
    if st != 201:
        problems.append(f"retrying the register: HTTP {st} {str(out)[:300]}")
    else:
        node.ok("DELETE", "/_plugins/_mach/models/crash-reg")
    p2, _ = leftovers(node, [serving])
    report("kill -9 mid-register (upload)", problems + p2, f" (restart {took:.0f} s; upload kept, register retried: {st})")

    # 3. mid-register from a path: the node stores the chunks itself, then dies
    models_dir = os.path.join(node.dir, "models")
    staged = os.path.join(models_dir, "crash-path.zip")
    shutil.copyfile(args.bundle, staged)
    os.chmod(staged, 0o644)
    req = threading.Thread(target=lambda: _try(node.call, "POST", "/_plugins/_mach/models/crash-path/_register",
                                               {"path": "crash-path.zip"}, 600), daemon=True)
    before = node.ok("GET", "/_plugins/_mach/uploads")["uploads"]
    req.start()

    def storing():
        # two chunk records: the first chunk was acknowledged (durable) before the second was sent
        node.call("POST", "/.plugins-mach-bundles/_refresh")
        st, c = node.call("POST", "/.plugins-mach-bundles/_count", {"query": {"bool": {"filter": [
            {"prefix": {"storage_id": "path-"}}, {"exists": {"field": "chunk"}}]}}})
        return st == 200 and c["count"] >= 2

    wait_for(storing, 300, "the path register storing chunks")
    kill9(node)
    took = restart(args, node)
    problems = check_serving(node, args.index, queries, baseline)
    if "crash-path" in registered(node):
        problems.append("crash-path is registered after a register that never answered")
    ups = node.ok("GET", "/_plugins/_mach/uploads")["uploads"]
    orphans = [u for u in ups if u.get("orphan")]
    if len(orphans) != 1 or len(ups) != len(before) + 1:
        problems.append(f"expected one orphan listed: {ups}")
    for u in orphans:
        st, out = node.call("DELETE", f"/_plugins/_mach/uploads/{u['upload_id']}")
        if st != 200:
            problems.append(f"DELETE of the orphan: HTTP {st} {out}")
    os.remove(staged)
    p2, _ = leftovers(node, [serving])
    report("kill -9 mid-register (path)", problems + p2,
           f" (restart {took:.0f} s; orphan listed with {orphans[0]['chunks'] if orphans else 0} chunks, deleted)")

    # 4. mid-deploy: registered, deploy asked, killed while the node reads the bundle from the store
    upload_id, chunks, sha = upload(node, args.bundle)
    node.ok("POST", "/_plugins/_mach/models/crash-dep/_register", {"upload_id": upload_id, "chunks": chunks, "sha256": sha},
            timeout=600)
    node.ok("POST", "/_plugins/_mach/models/crash-dep/_deploy?wait_for_completion=false")
    wait_for(lambda: any(os.path.getsize(f) > (32 << 20) for f in node.tmp_files() if os.path.exists(f)), 120,
             "the deploy's temporary zip")
    kill9(node)
    took = restart(args, node)
    problems = check_serving(node, args.index, queries, baseline)
    try:
        wait_deployed(node, "crash-dep", 300)
    except RuntimeError as e:
        problems.append(str(e))
    node.ok("POST", "/_plugins/_mach/models/crash-dep/_undeploy")
    node.ok("DELETE", "/_plugins/_mach/models/crash-dep")
    p2, _ = leftovers(node, [serving])
    report("kill -9 mid-deploy", problems + p2, f" (restart {took:.0f} s; the deploy finished after the restart)")

    left = 0
    for d in KILLED_TMPDIRS:
        for root, _, files in os.walk(d):
            left += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"crash: the killed nodes' java.io.tmpdir ({len(KILLED_TMPDIRS)} directories, outside the plugin's "
          f"mach-tmp; OpenSearch makes one per start) hold {left / (1 << 20):.1f} MB")
    print(f"crash: 4 cases checked, {len(failed)} problems")
    return 0 if not failed else 1


def _try(f, *a):
    try:
        return f(*a)
    except Exception as e:
        return e


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("soak", "crash"):
        s = sub.add_parser(name)
        s.add_argument("--node-dir", required=True)
        s.add_argument("--bundle", required=True, help="bundle zip")
        s.add_argument("--index", required=True, help="catalog index (product_id, title)")
        s.add_argument("--queries", required=True, help="TSV with a header, query text first")
        if name == "soak":
            s.add_argument("--redeploys", type=int, default=4)
            s.add_argument("--clients", type=int, default=2)
            s.add_argument("--settle", type=float, default=15.0, help="seconds of steady load before and after each redeploy")
            s.add_argument("--json")
        else:
            s.add_argument("--dist", required=True)
            s.add_argument("--plugin", required=True)
    args = p.parse_args(argv)
    return cmd_soak(args) if args.cmd == "soak" else cmd_crash(args)


if __name__ == "__main__":
    sys.exit(main())
