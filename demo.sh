#!/usr/bin/env bash
# The demo: builds the plugin, starts a local OpenSearch 3.6.0 node with it, trains (or reuses) a
# small MACH model, indexes the catalog and prints queries answered by BM25, MACH and hybrid side
# by side, then relevance figures for every method. Stops the node on exit.
#
#   ./demo.sh                                  synthetic shop made by model-tools (about 3-5 min)
#   ./demo.sh --data ../shared/data/esci-sample   real ESCI products, trained on product text only
#   ./demo.sh --data ../shared/data/homedepot     real Home Depot catalog + training judgments (longer)
#   options: --encoder (an encoder model: MACH heads over the pretrained all-MiniLM-L6-v2, set from
#            the catalog with no training; embedding the catalog takes ~1 min synthetic, ~5 min ESCI,
#            ~25 min Home Depot), --retrain (ignore a trained model kept in build/demo),
#            --keep (leave the node running), --catalog-side (MACH scores its top_n products from
#            the model's catalog instead of the products' buckets stored in the index)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
WORK="$ROOT/build/demo"
DATA="" RETRAIN=0 KEEP=0 ENCODER=0 SIDE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) [[ $# -ge 2 ]] || { echo "demo: --data needs a directory" >&2; exit 2; }; DATA=$2; shift 2 ;;
    --retrain) RETRAIN=1; shift ;;
    --encoder) ENCODER=1; shift ;;
    --keep) KEEP=1; shift ;;
    --catalog-side) SIDE=--catalog-side; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
if [[ -n "$DATA" ]]; then   # fail before any build when the data is not there
  [[ -f "$DATA/products.ndjson" || -f "$DATA/products.tsv" ]] \
    || { echo "demo: $DATA has neither products.ndjson nor products.tsv" >&2; exit 2; }
  [[ -f "$DATA/judgments-dev.tsv" ]] || { echo "demo: $DATA/judgments-dev.tsv not found" >&2; exit 2; }
fi
PY=/usr/bin/python3
PROGRESS=""; [[ -t 1 ]] || PROGRESS=--no-progress   # no progress bars in a log file
T0=$SECONDS
step() { echo; echo "== [$(( SECONDS - T0 ))s] $*"; }

step "checking prerequisites (JDK 21+, Maven, Debian Python packages)"
scripts/setup.sh

step "building the plugin"
source scripts/lib.sh
ZIP=$(build_plugin_zip)
echo "$ZIP"
step "the OpenSearch 3.6.0 distribution (Maven Central, unpacked once)"
DIST=$(ensure_distribution)

# ---- data and training recipe
mkdir -p "$WORK"
TRAIN_OPTS=(--epochs 4 --R 8 --B 256 --H 64 --D 65536 --L 64 --lr 0.01 --emb-lr 0.05 --batch-size 256)
if [[ -z "$DATA" ]]; then
  NAME=synth
  step "making the synthetic catalog (model-tools synth)"
  (cd model-tools && $PY -m mach_tools synth --out "$WORK/synth" --products 1000 --seed 42 >/dev/null)
  CATALOG="$WORK/synth/products.tsv"; ID_FIELD=product_id; TEXT_FIELDS=title
  PAIRS=(--pairs "$WORK/synth/queries.tsv"); JUDGMENTS="$WORK/synth/judgments-dev.tsv"; PRESET=synth
else
  DATA=$(readlink -f "$DATA")
  NAME=$(basename "$DATA")
  if [[ -f "$DATA/products.ndjson" ]]; then          # ESCI: no training queries, product text only
    CATALOG="$DATA/products.ndjson"; ID_FIELD=asin; TEXT_FIELDS=title,brand,color,bullet_points
    PAIRS=(); PRESET=esci
    TRAIN_OPTS=(--epochs 2 --R 16 --B 512 --H 128 --lr 0.01 --emb-lr 0.05 --batch-size 256 --augment-per-product 20)
  elif [[ -f "$DATA/products.tsv" ]]; then           # Home Depot: titles + training judgments
    CATALOG="$DATA/products.tsv"; ID_FIELD=product_id; TEXT_FIELDS=title
    PAIRS=(--pairs "$DATA/judgments-train.tsv" --skip-unknown); PRESET=homedepot
    [[ -f "$DATA/judgments-train.tsv" ]] || PAIRS=()
    TRAIN_OPTS=(--epochs 2 --R 16 --B 1024 --H 128 --augment-per-product 3)
  else
    echo "demo: $DATA has neither products.ndjson nor products.tsv" >&2; exit 2
  fi
  JUDGMENTS="$DATA/judgments-dev.tsv"
  [[ -f "$JUDGMENTS" ]] || { echo "demo: $JUDGMENTS not found" >&2; exit 2; }
fi

if [[ $ENCODER -eq 1 ]]; then  # the catalog sketch over the encoder the plugin build unpacked
  ENC="$ROOT/plugin/target/encoders/all-minilm-l6-v2-q"
  [[ -f "$ENC/encoder.onnx" ]] || ./mvnw -B -q -ntp -pl plugin process-test-resources
  case "$PRESET" in
    synth) SIZE=(--R 8 --B 256 --temperature 0.2) ;;
    esci) SIZE=(--R 16 --B 4096 --temperature 0.2) ;;
    *) SIZE=(--R 16 --B 4096 --temperature 0.3) ;;
  esac
  TRAIN_OPTS=(--encoder "$ENC" --embed-cache "$WORK/embed-cache" --epochs 0 "${SIZE[@]}")
  PAIRS=()  # the sketch is made from product titles; an untrained model needs no query log
  NAME="$NAME-encoder"
fi

# ---- train, or reuse the model trained with the same data and recipe
BUNDLE="$WORK/models/$NAME"
RECIPE="$CATALOG ${PAIRS[*]:-} ${TRAIN_OPTS[*]} $TEXT_FIELDS"
if [[ $RETRAIN -eq 0 && -f "$BUNDLE/mach.json" && "$(cat "$BUNDLE.recipe" 2>/dev/null)" == "$RECIPE" ]]; then
  step "reusing the model in $BUNDLE (--retrain to train again)"
else
  step "training a MACH model on $NAME (model-tools train, CPU, 2 threads)"
  (cd model-tools && $PY -m mach_tools train --catalog "$CATALOG" --id-field "$ID_FIELD" --text-fields "$TEXT_FIELDS" \
      ${PAIRS[@]+"${PAIRS[@]}"} --dev "$JUDGMENTS" --preset "$PRESET" --out "$BUNDLE" --name "demo-$NAME" --force \
      --threads 2 "${TRAIN_OPTS[@]}" $PROGRESS)
  echo "$RECIPE" > "$BUNDLE.recipe"
fi

# ---- node
step "starting an OpenSearch node with the plugin"
NODE="$WORK/node"
trap '[[ $KEEP -eq 1 ]] || integ-test/src/test/scripts/node.sh stop "$NODE"' EXIT
[[ $KEEP -eq 1 ]] && export MACH_NODE_WATCH_PID=0 || export MACH_NODE_WATCH_PID=$$
integ-test/src/test/scripts/node.sh start "$DIST" "$NODE" "$ZIP"
URL="http://127.0.0.1:$(cat "$NODE/http.port")"

step "indexing and querying: BM25 | MACH | hybrid"
$PY scripts/demo.py --url "$URL" --catalog "$CATALOG" --id-field "$ID_FIELD" --text-fields "$TEXT_FIELDS" \
  --judgments "$JUDGMENTS" --bundle "$BUNDLE" --model-id "demo-$NAME" \
  --index "demo-$NAME" --preset "$PRESET" $SIDE $([[ $KEEP -eq 1 ]] && echo --example)

step "done"
if [[ $KEEP -eq 1 ]]; then
  echo "node left running at $URL"
  echo "  stop it:                       integ-test/src/test/scripts/node.sh stop $NODE"
  echo "  start it again, with its data: integ-test/src/test/scripts/node.sh start $DIST $NODE $ZIP"
fi
