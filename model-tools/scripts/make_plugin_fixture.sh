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
# With --encoder: fixtures/tiny-encoder/ instead, a format 2 bundle (R=4, B=64 heads over the int8
# all-MiniLM-L6-v2, trained on the same data) without encoder.onnx and vocab.txt: those come from the
# Maven-unpacked encoder (plugin/target/encoders/all-minilm-l6-v2-q, byte for byte what the card's
# sha256 names) and are copied in by the tests that use it (integ-test EncoderRestIT).
#   usage: make_plugin_fixture.sh [--mixed | --encoder] [out-dir]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
fixtures=../plugin/src/test/resources/fixtures  # relative: the card records these paths
py="${PYTHON:-/usr/bin/python3}"
layer=() name=tiny-synth-r4-b64 data="${fixtures}/tiny"
if [ "${1:-}" = "--encoder" ]; then
  shift
  out="${1:-${fixtures}/tiny-encoder}"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$py" -m mach_tools train --encoder ../plugin/target/encoders/all-minilm-l6-v2-q \
    --catalog "$data/products.tsv" --pairs "$data/queries.tsv" --dev "$data/judgments-dev.tsv" --preset synth \
    --out "$tmp/bundle" --name tiny-synth-encoder-r4-b64 --R 4 --B 64 --epochs 10 --lr 0.01 --seed 13 --threads 2 --no-progress
  "$py" -m mach_tools inspect "$tmp/bundle" | tail -2
  rm -f "$tmp/bundle/encoder.onnx" "$tmp/bundle/vocab.txt"
  mkdir -p "$out" && rm -f "$out"/* && cp "$tmp/bundle"/* "$out"/
  du -sh "$out"
  exit 0
fi

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
