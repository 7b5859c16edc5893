#!/usr/bin/env python3
"""A large synthetic catalog for latency and memory benchmarks (not for relevance).

  bigcatalog.py --words-from ../shared/data/homedepot/products.tsv --products 1000000 --out DIR \\
      [--bundle TRAINED_BUNDLE]

DIR/products.tsv: product_id (S0000000...) and a title of 4-12 words drawn (seeded) from the word
frequencies of the source titles, so BM25 sees realistic posting lists for real queries.

With --bundle: DIR/bundle is that bundle's network (model.onnx, parity.json, ...) serving the new
catalog: new labels.txt, labels.count and sha256s in mach.json. A MACH network does not depend on
K (the product hash maps any id to its buckets), so this is a valid bundle of the same R, B, H, D
whose latency and memory are those of a K-product model; its rankings mean nothing (the network was
trained on another catalog). Training a 1M-product model for real takes hours on 2 CPU cores.
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--words-from", required=True, help="TSV with a header whose last column is a title")
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
    counts = collections.Counter()
    with open(args.words_from, encoding="utf-8") as f:
        next(f, None)
        for line in f:
            counts.update(re.findall(r"[a-z0-9]+", line.rsplit("\t", 1)[-1].lower()))
    if not counts:
        print(f"bigcatalog: no words in {args.words_from}", file=sys.stderr)
        return 2
    words, weights = zip(*counts.items())
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    ids = [f"S{i:07d}" for i in range(args.products)]
    with open(os.path.join(args.out, "products.tsv"), "w", encoding="utf-8") as f:
        f.write("product_id\ttitle\n")
        batch = 10_000
        for s in range(0, args.products, batch):
            n = min(batch, args.products - s)
            drawn = rng.choices(words, weights, k=n * 12)
            lines = []
            for j in range(n):
                k = 4 + rng.randrange(9)
                lines.append(f"{ids[s + j]}\t{' '.join(drawn[j * 12:j * 12 + k])}\n")
            f.writelines(lines)
    print(f"wrote {args.products} products to {args.out}/products.tsv", file=sys.stderr)
    if args.bundle:
        dst = os.path.join(args.out, "bundle")
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(dst)
        with open(os.path.join(args.bundle, "mach.json"), encoding="utf-8") as f:
            card = json.load(f)
        labels_file = card["labels"]["file"]
        for name in os.listdir(args.bundle):
            if name not in ("mach.json", labels_file):
                src = os.path.join(args.bundle, name)
                try:
                    os.link(src, os.path.join(dst, name))  # the network can be large: no copy when possible
                except OSError:
                    shutil.copy2(src, os.path.join(dst, name))
        with open(os.path.join(dst, labels_file), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(i + "\n" for i in ids)
        card["labels"]["count"] = args.products
        card["files"][labels_file] = sha256(os.path.join(dst, labels_file))
        card["name"] = f"{card.get('name', 'model')}-synthetic-{args.products}"
        with open(os.path.join(dst, "mach.json"), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=1)
        print(f"wrote {dst}: {card['name']} (network of {args.bundle}, {args.products} labels)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
