#!/usr/bin/env bash
# Regenerates the plugin's test fixture plugin/src/test/resources/fixtures/tiny/ (seeded, < 1 min on CPU):
#   products.tsv       product_id<TAB>title (header line), 300 synthetic products P00000..P00299
#   queries.tsv        query<TAB>product_id (header line): the training query log, incl. synonym queries
#                      ("crimson couch") whose words are not in any title
#   judgments-dev.tsv  query<TAB>product_id<TAB>relevance: held-out synonym queries (not trained on)
#   bundle/            the tiny MACH bundle (R=4, B=64, H=32, D=4096, L=32) per spec/bundle-format.md
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
out="${1:-../plugin/src/test/resources/fixtures/tiny}"  # relative: the card records these paths
py="${PYTHON:-/usr/bin/python3}"

mkdir -p "$out"
"$py" -m mach_tools synth --out "$out" --products 300 --seed 42
"$py" -m mach_tools train --catalog "$out/products.tsv" --pairs "$out/queries.tsv" \
  --dev "$out/judgments-dev.tsv" --preset synth --out "$out/bundle" --name tiny-synth-r4-b64 --force \
  --R 4 --B 64 --H 32 --D 4096 --L 32 --epochs 15 --batch-size 128 --lr 0.01 --emb-lr 0.05 \
  --augment-per-product 20 --seed 13 --threads 2 --no-progress
"$py" -m mach_tools inspect "$out/bundle" > /dev/null
du -sh "$out/bundle"
