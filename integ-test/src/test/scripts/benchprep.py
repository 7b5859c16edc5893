#!/usr/bin/env python3
"""Helpers of bench.sh against a running node (loopback).

  benchprep.py index  --url U --index I --catalog TSV [--id-field product_id] [--text-fields title]
                      [--bucket-field mach --bundle DIR]
      with --bucket-field, the index also gets a mach_buckets field of the bundle's hash family
      (its card's product_hash.family, or the family its seeds spell), filled from the id field
  benchprep.py store  --url U --index I --label L --out FILE.jsonl [--merge] [--drop]
      the index's documents, segments and bytes on disk appended as one JSON line; with --merge,
      force-merged to one segment first (so two indices' sizes compare); with --drop, the index is
      deleted afterwards
  benchprep.py memory --url U --pid NODE_PID --label L [--model-id M] --out FILE.jsonl
      node RSS (/proc) and JVM heap used (_nodes/_local/stats) appended as one JSON line; with
      --model-id, loads the model first (GET _plugins/_mach/models/M) and adds its size figures;
      without, adds what the node reports loaded (GET _plugins/_mach/models), loading nothing.
      Call it after a full GC (bench.sh runs jcmd GC.run) so heap used means live objects.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "model-tools"))
from mach_tools import engine_eval as E  # noqa: E402
from mach_tools.data import UserError, read_catalog  # noqa: E402
from mach_tools.featurize import card_family  # noqa: E402


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise UserError(f"no VmRSS for pid {pid}")


def hash_family(bundle):
    """The hash family name of a bundle's product hash (its card's product_hash.family, or the family
    its seeds spell); a UserError when it has none."""
    with open(os.path.join(bundle, "mach.json"), encoding="utf-8") as f:
        product_hash = json.load(f)["product_hash"]
    try:
        family = card_family(product_hash)
    except ValueError as e:
        raise UserError(f"{bundle}: {e}")
    if family is None:
        raise UserError(f"{bundle}: the product hash seeds are not a hash family's: this model cannot serve index-side queries")
    return family.name


def store_row(node, index, label, merge):
    if merge:
        node.call("POST", f"/{index}/_forcemerge?max_num_segments=1")
        node.call("POST", f"/{index}/_refresh")
    stats = node.call("GET", f"/{index}/_stats/docs,store,segments")["indices"][index]["primaries"]
    docs = stats["docs"]["count"]
    size = stats["store"]["size_in_bytes"]
    return {"label": label, "index": index, "docs": docs, "segments": stats["segments"]["count"],
            "store_bytes": size, "bytes_per_doc": round(size / docs, 1) if docs else None}


def main(argv=None):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("index")
    i.add_argument("--url", required=True)
    i.add_argument("--index", required=True)
    i.add_argument("--catalog", required=True)
    i.add_argument("--id-field", default="product_id")
    i.add_argument("--text-fields", default="title")
    i.add_argument("--bucket-field", help="also index a mach_buckets field of this name (needs --bundle)")
    i.add_argument("--bundle", help="the model bundle whose hash family the bucket field uses")
    st = sub.add_parser("store")
    st.add_argument("--url", required=True)
    st.add_argument("--index", required=True)
    st.add_argument("--label", required=True)
    st.add_argument("--merge", action="store_true")
    st.add_argument("--drop", action="store_true")
    st.add_argument("--out", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--url", required=True)
    m.add_argument("--pid", required=True, type=int)
    m.add_argument("--label", required=True)
    m.add_argument("--model-id")
    m.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        node = E.Node(args.url, timeout=600)
        if args.cmd == "index":
            if args.bucket_field and not args.bundle:
                raise UserError("--bucket-field needs --bundle (its hash family)")
            family = hash_family(args.bundle) if args.bucket_field else None
            catalog = read_catalog(args.catalog, args.id_field, args.text_fields.split(","))
            E.index_catalog(node, args.index, catalog, args.id_field, progress=False,
                            bucket_field=E.BucketField(args.bucket_field, family) if family else None)
            extra = f", buckets of {family} in [{args.bucket_field}]" if family else ""
            print(f"indexed {len(catalog)} products into [{args.index}]{extra}", file=sys.stderr)
            return 0
        if args.cmd == "store":
            row = store_row(node, args.index, args.label, args.merge)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row))
            if args.drop:
                node.call("DELETE", f"/{args.index}")
            return 0
        row = {"label": args.label}
        if args.model_id:
            model = node.call("GET", f"/_plugins/_mach/models/{args.model_id}")
            row["model"] = {k: model.get(k) for k in ("R", "B", "products", "load_ms", "catalog_loaded", "catalog_bytes",
                                                      "heap_and_native_bytes")}
            card = model.get("card", {})
            files = os.path.join(model["directory"], card.get("onnx", {}).get("file", "model.onnx"))
            row["model"]["onnx_bytes"] = os.path.getsize(files) if os.path.exists(files) else None
            if "encoder" in card:  # bundle format 2: the sentence encoder is a second ONNX file
                enc = os.path.join(model["directory"], card["encoder"]["file"])
                row["model"]["encoder_onnx_bytes"] = os.path.getsize(enc) if os.path.exists(enc) else None
        else:  # what the node has loaded, without loading anything (a catalog, say)
            loaded = node.call("GET", "/_plugins/_mach/models").get("loaded", {})
            row["loaded"] = {m: {k: v.get(k) for k in ("R", "B", "products", "catalog_loaded", "catalog_bytes")}
                             for m, v in loaded.items()}
        stats = node.call("GET", "/_nodes/_local/stats/jvm")
        jvm = next(iter(stats["nodes"].values()))["jvm"]["mem"]
        row.update({"rss_bytes": rss_bytes(args.pid), "heap_used_bytes": jvm["heap_used_in_bytes"],
                    "heap_max_bytes": jvm["heap_max_in_bytes"],
                    "non_heap_used_bytes": jvm.get("non_heap_used_in_bytes")})
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row))
        return 0
    except UserError as e:
        print(f"benchprep: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
