#!/usr/bin/env bash
# Regenerates the plugin's test fixture plugin/src/test/resources/fixtures/tiny/ (seeded, < 1 min on CPU):
#   products.tsv       product_id<TAB>title (header line), 300 synthetic products P00000..P00299
#   queries.tsv        query<TAB>product_id (header line): the training query log, incl. synonym queries
#                      ("crimson couch") whose words are not in any title
#   judgments-dev.tsv  query<TAB>product_id<TAB>relevance: held-out synonym queries (not trained on)
#   bundle/            the tiny MACH bundle (R=4, B=64, H=32, D=4096, L=32) per spec/bundle-format.md
# With --mixed: fixtures/tiny-mixed/bundle/ instead, the same model with a mixed-dimension input layer
# (docs/embeddings.md) of at most 128 KiB, 4x smaller than the uniform 4096 x 32 table; it trains on
# the tiny fixture's data (regenerated in place, identical: synth is seeded).
#   usage: make_plugin_fixture.sh [--mixed] [out-dir]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
fixtures=../plugin/src/test/resources/fixtures  # relative: the card records these paths
py="${PYTHON:-/usr/bin/python3}"
layer=() name=tiny-synth-r4-b64 data="${fixtures}/tiny"
if [ "${1:-}" = "--mixed" ]; then
  shift
  layer=(--input-layer mixed --emb-budget 128K --emb-blocks 4)
  name=tiny-synth-r4-b64-mixed
  out="${1:-${fixtures}/tiny-mixed}"
else
  out="${1:-${fixtures}/tiny}"
  data="$out"
fi

mkdir -p "$data" "$out"
"$py" -m mach_tools synth --out "$data" --products 300 --seed 42
"$py" -m mach_tools train --catalog "$data/products.tsv" --pairs "$data/queries.tsv" \
  --dev "$data/judgments-dev.tsv" --preset synth --out "$out/bundle" --name "$name" --force \
  --R 4 --B 64 --H 32 --D 4096 --L 32 --epochs 15 --batch-size 128 --lr 0.01 --emb-lr 0.05 \
  --augment-per-product 20 --seed 13 --threads 2 --no-progress "${layer[@]}"
"$py" -m mach_tools inspect "$out/bundle" | tail -2
du -sh "$out/bundle"
