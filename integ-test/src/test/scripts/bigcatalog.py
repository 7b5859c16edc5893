#!/usr/bin/env python3
"""A large synthetic catalog for latency and memory benchmarks (not for relevance).

  bigcatalog.py --words-from ../shared/data/homedepot/products.tsv --products 1000000 --out DIR \\
      [--bundle TRAINED_BUNDLE]
  bigcatalog.py --ids-from ../shared/data/homedepot/products.tsv --out DIR --bundle TRAINED_BUNDLE

DIR/products.tsv: product_id (S0000000...) and a title of 4-12 words drawn (seeded) from the word
frequencies of the source titles, so BM25 sees realistic posting lists for real queries.

With --bundle: DIR/bundle is that bundle's network (model.onnx, parity.json, ...) serving the new
catalog: new labels.txt, labels.count and sha256s in mach.json. A MACH network does not depend on
K (the product hash maps any id to its buckets), so this is a valid bundle of the same R, B, H, D
whose latency and memory are those of a K-product model; its rankings mean nothing (the network was
trained on another catalog). Training a 1M-product model for real takes hours on 2 CPU cores.

With --ids-from (instead of --words-from): no synthetic catalog; DIR/bundle serves that catalog's
product ids (first column), so one network can be benchmarked on a real catalog and on synthetic
ones of other sizes.
"""
import argparse
import collections
import hashlib
import json
import os
import random
import re
import shutil
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def synthetic_catalog(words_from, products, out, seed):
    """Writes OUT/products.tsv; returns its product ids."""
    counts = collections.Counter()
    with open(words_from, encoding="utf-8") as f:
        next(f, None)
        for line in f:
            counts.update(re.findall(r"[a-z0-9]+", line.rsplit("\t", 1)[-1].lower()))
    if not counts:
        raise ValueError(f"no words in {words_from}")
    words, weights = zip(*counts.items())
    rng = random.Random(seed)
    ids = [f"S{i:07d}" for i in range(products)]
    with open(os.path.join(out, "products.tsv"), "w", encoding="utf-8") as f:
        f.write("product_id\ttitle\n")
        batch = 10_000
        for s in range(0, products, batch):
            n = min(batch, products - s)
            drawn = rng.choices(words, weights, k=n * 12)
            lines = []
            for j in range(n):
                k = 4 + rng.randrange(9)
                lines.append(f"{ids[s + j]}\t{' '.join(drawn[j * 12:j * 12 + k])}\n")
            f.writelines(lines)
    print(f"wrote {products} products to {out}/products.tsv", file=sys.stderr)
    return ids


def catalog_ids(path):
    """The distinct product ids (first column) of a TSV with a header, in file order."""
    seen = {}
    with open(path, encoding="utf-8") as f:
        next(f, None)
        for line in f:
            pid = line.split("\t", 1)[0].strip()
            if pid:
                seen.setdefault(pid, None)
    if not seen:
        raise ValueError(f"no product ids in {path}")
    return list(seen)


def relabel(bundle, ids, out, what):
    """OUT/bundle: BUNDLE's network (hard links where possible) with IDS as its labels."""
    dst = os.path.join(out, "bundle")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    with open(os.path.join(bundle, "mach.json"), encoding="utf-8") as f:
        card = json.load(f)
    labels_file = card["labels"]["file"]
    for name in os.listdir(bundle):
        if name not in ("mach.json", labels_file):
            src = os.path.join(bundle, name)
            try:
                os.link(src, os.path.join(dst, name))  # the network can be large: no copy when possible
            except OSError:
                shutil.copy2(src, os.path.join(dst, name))
    with open(os.path.join(dst, labels_file), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(i + "\n" for i in ids)
    card["labels"]["count"] = len(ids)
    card["files"][labels_file] = sha256(os.path.join(dst, labels_file))
    card["name"] = f"{card.get('name', 'model')}-{what}-{len(ids)}"
    with open(os.path.join(dst, "mach.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)
    print(f"wrote {dst}: {card['name']} (network of {bundle}, {len(ids)} labels)", file=sys.stderr)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--words-from", help="TSV with a header whose last column is a title")
    src.add_argument("--ids-from", help="TSV with a header whose first column is a product id: label the bundle with these")
    p.add_argument("--products", type=int, default=1_000_000)
    p.add_argument("--out", required=True)
    p.add_argument("--bundle", help="trained bundle whose network serves the new catalog")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if not (1 <= args.products <= 20_000_000):
        print("bigcatalog: --products must be in 1..20,000,000", file=sys.stderr)
        return 2
    if args.bundle and not os.path.isfile(os.path.join(args.bundle, "mach.json")):
        print(f"bigcatalog: {args.bundle} has no mach.json", file=sys.stderr)
        return 2
    if args.ids_from and not args.bundle:
        print("bigcatalog: --ids-from only labels a bundle: give --bundle", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    try:
        if args.ids_from:
            ids, what = catalog_ids(args.ids_from), "relabeled"
        else:
            ids, what = synthetic_catalog(args.words_from, args.products, args.out, args.seed), "synthetic"
    except ValueError as e:
        print(f"bigcatalog: {e}", file=sys.stderr)
        return 2
    if args.bundle:
        relabel(args.bundle, ids, args.out, what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
