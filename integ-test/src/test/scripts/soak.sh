#!/usr/bin/env bash
# Lifecycle soak and crash checks on one real node (not part of ./test.sh or CI: 15-30 min).
#
#   integ-test/src/test/scripts/soak.sh --bundle DIR|ZIP [options]
#
#   --bundle B       a bundle of a few hundred MB (directory or zip), e.g. the Home Depot hd-v1 model
#                    (docs/relevance.md, "How to reproduce"; 286 MB zip)
#   --catalog TSV    products indexed for the queries (default ../shared/data/homedepot/products.tsv)
#   --queries TSV    query texts, first column (default ../shared/data/homedepot/judgments-dev.tsv)
#   --redeploys N    redeploys under load (default 4)
#   --clients N      query threads (default 2)
#   --node-dir D     node home (default integ-test/target/soak-node; its data is kept between runs,
#                    --fresh starts it empty)
#   --only soak|crash  one of the two parts (default both)
#   --keep           leave the node running at the end
#
# Soak: queries through an alias (a `mach` search on an index bound to it and `_predict`) run without
# pause while the bundle is uploaded in chunks, registered, deployed under the other of two ids, the
# alias swapped to it and the old id undeployed and deleted, N times. Prints queries, failed (any
# non-200), wrong (top hits other than the first answer), the heap peak per step, breaker trips, and
# what was left behind (uploads, chunks no model owns, temporary files).
# Crash: kill -9 of the node mid-upload, mid-register (upload and path) and mid-deploy, each followed by
# a restart with the data kept and checks that every model, alias and binding is back, the interrupted
# upload is listed by GET _plugins/_mach/uploads and reclaimable, and <data>/mach-tmp is empty.
# The node's heap is MACH_NODE_HEAP (default 1g, as node.sh). Exit status 1 when a check failed.
set -euo pipefail
CALLER=$PWD
cd "$(dirname "$0")/../../../.."
ROOT=$PWD
from_caller() { (cd "$CALLER" && readlink -m "$1"); }  # options name paths as seen from where soak.sh was called
SCRIPTS=integ-test/src/test/scripts
PY=/usr/bin/python3

BUNDLE="" CATALOG=../shared/data/homedepot/products.tsv QUERIES=../shared/data/homedepot/judgments-dev.tsv
REDEPLOYS=4 CLIENTS=2 NODE_DIR=integ-test/target/soak-node ONLY="" KEEP=0 FRESH=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bundle) BUNDLE=$(from_caller "$2"); shift 2 ;;
    --catalog) CATALOG=$(from_caller "$2"); shift 2 ;;
    --queries) QUERIES=$(from_caller "$2"); shift 2 ;;
    --redeploys) REDEPLOYS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --node-dir) NODE_DIR=$(from_caller "$2"); shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --fresh) FRESH=(--fresh); shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
[[ -n "$BUNDLE" ]] || { echo "soak.sh: --bundle is required (a bundle of a few hundred MB; --help)" >&2; exit 2; }
for f in "$BUNDLE" "$CATALOG" "$QUERIES"; do [[ -e "$f" ]] || { echo "soak.sh: $f not found" >&2; exit 2; }; done

source scripts/lib.sh
ZIP=$(build_plugin_zip)
DIST=$(ensure_distribution)
mkdir -p "$(dirname "$NODE_DIR")"
NODE_DIR=$(readlink -m "$NODE_DIR")
# the bundle as the zip that is uploaded (reproducible: the same files give the same sha256)
BUNDLE_ZIP="$(dirname "$NODE_DIR")/soak-bundle.zip"
if [[ -f "$BUNDLE" ]]; then cp "$BUNDLE" "$BUNDLE_ZIP"; else
  (cd model-tools && $PY -c "import sys; from mach_tools.deploy import zip_bundle; zip_bundle(sys.argv[1], sys.argv[2])" \
    "$BUNDLE" "$BUNDLE_ZIP")
fi

MACH_NODE_WATCH_PID=0 $SCRIPTS/node.sh start "${FRESH[@]}" "$DIST" "$NODE_DIR" "$ZIP"
stop() { (( KEEP )) || $SCRIPTS/node.sh stop "$NODE_DIR"; }
trap stop EXIT
URL="http://127.0.0.1:$(cat "$NODE_DIR/http.port")"
echo "soak.sh: node $URL, heap ${MACH_NODE_HEAP:-1g}, bundle $BUNDLE ($(( $(stat -c %s "$BUNDLE_ZIP") >> 20 )) MB zip)"
$PY $SCRIPTS/benchprep.py index --url "$URL" --index soak-catalog --catalog "$CATALOG"

rc=0
COMMON=(--node-dir "$NODE_DIR" --bundle "$BUNDLE_ZIP" --index soak-catalog --queries "$QUERIES")
if [[ "$ONLY" != crash ]]; then
  $PY $SCRIPTS/soak.py soak "${COMMON[@]}" --redeploys "$REDEPLOYS" --clients "$CLIENTS" \
    --json "$(dirname "$NODE_DIR")/soak.json" || rc=1
fi
if [[ "$ONLY" != soak ]]; then
  $PY $SCRIPTS/soak.py crash "${COMMON[@]}" --dist "$DIST" --plugin "$ZIP" || rc=1
fi
exit $rc
