#!/usr/bin/env bash
# Builds the JMH benchmarks (benchmarks/target/mach-benchmarks-*.jar + its classpath) and runs them
# with short settings (1 fork, 1 x 1 s warm-up, 3 x 2 s measured; SampleTime: p50/p99 per op).
# Run from anywhere; paths in -p arguments are relative to the repository root. Examples:
#   benchmarks/run.sh DecodeBench -p products=1000000            # synthetic probabilities
#   benchmarks/run.sh DecodeBench -p bundle=/work/models/hd-r16-b4096-h256 -p f=1,2
#   benchmarks/run.sh PredictBench -p bundle=/work/models/hd-r16-b4096-h256
#   benchmarks/run.sh ShardQueryBench -p catalog=/work/models/synth1m/products.tsv
#   benchmarks/run.sh -l                                          # list the benchmarks
# Other JMH options go after the regex (-rf json -rff out.json, -prof gc, ...); the short settings are
# $JMH_SHORT (default below): JMH_SHORT="" benchmarks/run.sh ... uses the classes' own (longer) settings.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/jdk.sh
JDK=$(find_jdk21) || { echo "run.sh: no JDK 21+ found (set JAVA_HOME)" >&2; exit 2; }
./mvnw -B -q -pl benchmarks -am package dependency:build-classpath -DskipTests -Dmdep.outputFile="$PWD/benchmarks/target/classpath.txt"
jar=$(ls benchmarks/target/mach-benchmarks-*.jar)
short=${JMH_SHORT--f 1 -wi 1 -w 1s -i 3 -r 2s}
# shellcheck disable=SC2086 # $short is several options
exec "$JDK/bin/java" -cp "$jar:$(cat benchmarks/target/classpath.txt)" org.openjdk.jmh.Main $short "$@"
