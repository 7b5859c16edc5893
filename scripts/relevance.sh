#!/usr/bin/env bash
# Relevance through a real node: BM25, MACH and each combine mode on a judged data set
# (model-tools engine-eval; see docs/relevance.md). Starts a node with the plugin, deploys the
# bundle, indexes the catalog, runs every judged query, stops the node.
#
#   scripts/relevance.sh [--keep] BUNDLE DATA_DIR [engine-eval options...]
#     DATA_DIR: a Home Depot-shaped dir (products.tsv + judgments-dev.tsv, preset homedepot) or an
#               ESCI-shaped one (products.ndjson + judgments-dev.tsv, preset esci)
#     e.g. --judgments OTHER.tsv, --mach-weight 5, --top-n 200, --out r.json, --plot r.png
#     --keep  leave the node running: the next call then costs only the queries
# What is unchanged is reused: the plugin zip when no plugin source is newer, the node in
# build/relevance/node (still running after --keep, else started again with its data), the model
# when the cluster holds this bundle (same sha256) under its id, the index when it holds the catalog's
# product count. The last line of stdout is engine-eval's JSON summary.
set -euo pipefail
KEEP=0; [[ "${1:-}" == --keep ]] && { KEEP=1; shift; }
[[ $# -ge 2 ]] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
BUNDLE=$(realpath "$1"); DATA=$(realpath "$2"); shift 2
cd "$(dirname "$0")/.."
source scripts/lib.sh
[[ -f "$BUNDLE/mach.json" ]] || { echo "relevance: $BUNDLE is not a model bundle (no mach.json)" >&2; exit 2; }
if [[ -f "$DATA/products.ndjson" ]]; then
  DATASET=(--catalog "$DATA/products.ndjson" --id-field asin --text-fields title,bullet_points,description,brand,color --preset esci)
elif [[ -f "$DATA/products.tsv" ]]; then
  DATASET=(--catalog "$DATA/products.tsv" --id-field product_id --text-fields title --preset homedepot)
else
  echo "relevance: $DATA has neither products.ndjson nor products.tsv" >&2; exit 2
fi
scripts/setup.sh >&2
ZIP=$(build_plugin_zip)
DIST=$(ensure_distribution)
NODE="$PWD/build/relevance/node"
if (( KEEP )); then
  export MACH_NODE_WATCH_PID=0
else
  export MACH_NODE_WATCH_PID=$$
  trap 'integ-test/src/test/scripts/node.sh stop "$NODE" >&2' EXIT
fi
integ-test/src/test/scripts/node.sh start "$DIST" "$NODE" "$ZIP" >&2
MODEL_ID=$(basename "$BUNDLE" | tr -c 'A-Za-z0-9._\n-' '-')
(cd model-tools && /usr/bin/python3 -m mach_tools engine-eval --url "http://127.0.0.1:$(cat "$NODE/http.port")" \
  "${DATASET[@]}" --judgments "$DATA/judgments-dev.tsv" --bundle "$BUNDLE" \
  --model-id "$MODEL_ID" "$@")
if (( KEEP )); then echo "relevance: node left running in $NODE (stop: integ-test/src/test/scripts/node.sh stop $NODE)" >&2; fi
