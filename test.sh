#!/usr/bin/env bash
# The whole test suite: Java unit tests, in-JVM cluster tests and the real-node REST tests
# (./mvnw verify), then the Python tests of model-tools. Installs what is missing first.
# Exits non-zero when anything fails.
set -uo pipefail
cd "$(dirname "$0")"

scripts/setup.sh || exit 1

start=$SECONDS
echo "test.sh: ./mvnw verify: Java unit, in-JVM cluster and real-node REST tests (3-6 min on 2 cores)"
./mvnw -B -ntp verify "$@"
mvn_rc=$?
mvn_s=$(( SECONDS - start ))

start=$SECONDS
echo "test.sh: model-tools pytest (1-2 min; a dot per test)"
# unbuffered: the dots show up as tests pass, also when the output goes to a pipe or a file
(cd model-tools && PYTHONUNBUFFERED=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider)
py_rc=$?
py_s=$(( SECONDS - start ))

# a node left behind would be a bug in integ-test: say so loudly
node_home=$(readlink -m integ-test/target/node)
if pgrep -f "path.home=$node_home" >/dev/null 2>&1; then
  echo "test.sh: WARNING: the integ-test node is still running:" >&2
  pgrep -af "path.home=$node_home" | cut -c1-200 >&2
  mvn_rc=1
fi

echo
echo "test.sh: maven verify (Java unit + in-JVM cluster + real-node REST): $([[ $mvn_rc -eq 0 ]] && echo PASSED || echo "FAILED rc=$mvn_rc") in ${mvn_s}s"
echo "test.sh: model-tools pytest: $([[ $py_rc -eq 0 ]] && echo PASSED || echo "FAILED rc=$py_rc") in ${py_s}s"
(( mvn_rc == 0 && py_rc == 0 ))
