#!/usr/bin/env bash
# Benchmark: starts a node with the plugin (node.sh), deploys a MACH bundle, indexes the catalog,
# measures memory before/after the model loads, runs loadgen.py (BM25 and every mach mode in one
# run, cache off, then a cached phase), stops the node. Results in OUT (default build/bench/<name>).
#
#   integ-test/src/test/scripts/bench.sh --name hd --catalog ../shared/data/homedepot/products.tsv \
#       --queries ../shared/data/homedepot/judgments-dev.tsv --bundle /path/to/bundle [loadgen options...]
#   options: --train "TRAIN ARGS"  train the bundle first when --bundle has no mach.json
#            (model-tools train --catalog CATALOG --out BUNDLE TRAIN ARGS)
#            --heap 2g (node heap, default 2g)   --out DIR
#            --jfr  record the node with Java Flight Recorder during the load run: OUT/node.jfr and
#                   OUT/hot-methods.txt (the methods most often on CPU, by jfr-summary.py)
#            --clients 1,4  one load run per client count on the same node and index
#                   (OUT/loadgen-c1.md, OUT/loadgen-c4.md, ...; a single count: OUT/loadgen.md)
#            --bucket-field mach  index-side MACH too: the index gets a mach_buckets field of the
#                   bundle's hash family (copy_to from product_id), loadgen runs the index-* methods
#                   next to BM25 and the product_id_field ones, and memory.jsonl gets a row after
#                   index-side queries alone (the coordinator's heap before any catalog is needed)
#            --index-size  the bytes the bucket field adds: a twin index without it, both
#                   force-merged to one segment (OUT/index-size.jsonl; the twin is then deleted)
# Every other option goes to loadgen.py (--seconds, --rounds, --phases, --methods, ...).
set -euo pipefail
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$SCRIPTS/../../../.." && pwd)
PY=/usr/bin/python3
NAME="" CATALOG="" QUERIES="" BUNDLE="" TRAIN="" HEAP=2g OUT="" CLIENTS=4 BUCKET_FIELD="" INDEX_SIZE=0 LOADGEN=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME=$2; shift 2 ;;
    --catalog) CATALOG=$(readlink -f "$2"); shift 2 ;;
    --queries) QUERIES=$(readlink -f "$2"); shift 2 ;;
    --bundle) BUNDLE=$(readlink -m "$2"); shift 2 ;;
    --train) TRAIN=$2; shift 2 ;;
    --heap) HEAP=$2; shift 2 ;;
    --out) OUT=$(readlink -m "$2"); shift 2 ;;
    --jfr) JFR=1; shift ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --bucket-field) BUCKET_FIELD=$2; shift 2 ;;
    --index-size) INDEX_SIZE=1; shift ;;
    -h|--help) sed -n '2,/^# Every other/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) LOADGEN+=("$1"); shift ;;
  esac
done
die() { echo "bench: $*" >&2; exit 2; }
[[ -n "$NAME" && "$NAME" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "--name (lower-case letters, digits, . _ -) is required"
[[ -f "$CATALOG" ]] || die "--catalog: no such file"
[[ -f "$QUERIES" ]] || die "--queries: no such file"
[[ -n "$BUNDLE" ]] || die "--bundle is required"
(( ! INDEX_SIZE )) || [[ -n "$BUCKET_FIELD" ]] || die "--index-size measures the bucket field: give --bucket-field"
BUCKETS=() # benchprep index and loadgen options of index-side MACH
[[ -z "$BUCKET_FIELD" ]] || BUCKETS=(--bucket-field "$BUCKET_FIELD")
OUT=${OUT:-$ROOT/build/bench/$NAME}
mkdir -p "$OUT"

if [[ ! -f "$BUNDLE/mach.json" ]]; then
  [[ -n "$TRAIN" ]] || die "$BUNDLE has no mach.json; give --train \"...\" to train it"
  echo "bench: training $BUNDLE" >&2
  # shellcheck disable=SC2086
  (cd "$ROOT/model-tools" && $PY -m mach_tools train --catalog "$CATALOG" --out "$BUNDLE" --threads 2 --no-progress $TRAIN)
fi

ZIP=$(cd "$ROOT" && source scripts/lib.sh && build_plugin_zip)   # never a stale zip: rebuilt when a source is newer
DIST=$(cd "$ROOT" && source scripts/lib.sh && ensure_distribution)

NODE="$OUT/node"
trap '"$SCRIPTS/node.sh" stop "$NODE"' EXIT
export MACH_NODE_WATCH_PID=$$ MACH_NODE_HEAP=$HEAP
"$SCRIPTS/node.sh" start --fresh "$DIST" "$NODE" "$ZIP"
URL="http://127.0.0.1:$(cat "$NODE/http.port")"
PID=$(cat "$NODE/node.pid")
JCMD="$(dirname "$(readlink -f "/proc/$PID/exe")")/jcmd"
OWNER=$(stat -c %U "/proc/$PID")
gc() { runuser -u "$OWNER" -- "$JCMD" "$PID" GC.run >/dev/null || echo "bench: jcmd GC.run failed; heap figures include garbage" >&2; sleep 2; }

mkdir -p "$NODE/models"
rm -rf "$NODE/models/$NAME"
cp -r "$BUNDLE" "$NODE/models/$NAME"
chown -R "$OWNER" "$NODE/models/$NAME"

T0=$SECONDS
$PY "$SCRIPTS/benchprep.py" index --url "$URL" --index "$NAME" --catalog "$CATALOG" --bundle "$BUNDLE" ${BUCKETS[@]+"${BUCKETS[@]}"}
echo "bench: indexing took $(( SECONDS - T0 )) s" >&2
rm -f "$OUT/memory.jsonl" "$OUT/index-size.jsonl"
if (( INDEX_SIZE )); then
  T0=$SECONDS
  $PY "$SCRIPTS/benchprep.py" index --url "$URL" --index "$NAME-lexical" --catalog "$CATALOG"
  echo "bench: indexing without the bucket field took $(( SECONDS - T0 )) s" >&2
  $PY "$SCRIPTS/benchprep.py" store --url "$URL" --index "$NAME-lexical" --merge --drop --label "without the bucket field" --out "$OUT/index-size.jsonl"
  $PY "$SCRIPTS/benchprep.py" store --url "$URL" --index "$NAME" --merge --label "with the bucket field" --out "$OUT/index-size.jsonl"
else
  $PY "$SCRIPTS/benchprep.py" store --url "$URL" --index "$NAME" --label "as indexed" --out "$OUT/index-size.jsonl"
fi
gc; $PY "$SCRIPTS/benchprep.py" memory --url "$URL" --pid "$PID" --label "indexed, no model" --out "$OUT/memory.jsonl"
if [[ -n "$BUCKET_FIELD" ]]; then
  # index-side queries alone first: the model's network is loaded, its catalog is never needed
  $PY "$SCRIPTS/loadgen.py" --url "$URL" --index "$NAME" --model-id "$NAME" --queries "$QUERIES" --bucket-field "$BUCKET_FIELD" \
    --methods index-mach,index-boost --clients 1 --seconds 3 --rounds 1 --warmup-seconds 0 --phases uncached > "$OUT/index-side-only.md"
  gc; $PY "$SCRIPTS/benchprep.py" memory --url "$URL" --pid "$PID" --label "after index-side queries alone" --out "$OUT/memory.jsonl"
fi
$PY "$SCRIPTS/benchprep.py" memory --url "$URL" --pid "$PID" --label "model loaded, before GC" --model-id "$NAME" --out "$OUT/memory.jsonl"
gc; $PY "$SCRIPTS/benchprep.py" memory --url "$URL" --pid "$PID" --label "model loaded" --model-id "$NAME" --out "$OUT/memory.jsonl"

if [[ ${JFR:-0} -eq 1 ]]; then
  # the recording is written by the node's user: into its home, then moved to OUT
  runuser -u "$OWNER" -- "$JCMD" "$PID" JFR.start name=bench settings=profile filename="$NODE/node.jfr" >/dev/null
fi
for c in ${CLIENTS//,/ }; do
  [[ "$CLIENTS" == *,* ]] && result="$OUT/loadgen-c$c" || result="$OUT/loadgen"
  $PY "$SCRIPTS/loadgen.py" --url "$URL" --index "$NAME" --model-id "$NAME" --queries "$QUERIES" --clients "$c" \
    --json "$result.json" ${BUCKETS[@]+"${BUCKETS[@]}"} ${LOADGEN[@]+"${LOADGEN[@]}"} | tee "$result.md"
done
if [[ ${JFR:-0} -eq 1 ]]; then
  runuser -u "$OWNER" -- "$JCMD" "$PID" JFR.stop name=bench >/dev/null
  mv "$NODE/node.jfr" "$OUT/node.jfr"
  "$(dirname "$JCMD")/jfr" print --json --events jdk.ExecutionSample "$OUT/node.jfr" | $PY "$SCRIPTS/jfr-summary.py" > "$OUT/hot-methods.txt"
  echo "bench: profile in $OUT/hot-methods.txt" >&2
fi
gc; $PY "$SCRIPTS/benchprep.py" memory --url "$URL" --pid "$PID" --label "after the load run" --out "$OUT/memory.jsonl"
echo "bench: results in $OUT" >&2
