# Shared steps of demo.sh and scripts/relevance.sh (source it from the repository root).

# Prints the path of the plugin zip, built first (tests skipped) unless it is newer than every
# file of the plugin's sources and poms.
build_plugin_zip() {
  local zip; zip=$(ls -t plugin/target/releases/mach-retrieval-*.zip 2>/dev/null | head -1)
  if [[ -n "$zip" && -z "$(find pom.xml plugin/pom.xml plugin/src -newer "$zip" -print -quit)" ]]; then
    echo "plugin zip up to date (no source newer than it)" >&2
  else
    echo "building the plugin zip (./mvnw package, tests skipped: 15-60 s)" >&2
    ./mvnw -B -q -ntp -pl plugin -am package -DskipTests >&2
    zip=$(ls -t plugin/target/releases/mach-retrieval-*.zip | head -1)
  fi
  echo "$zip"
}

# Unpacks OpenSearch 3.6.0 (Maven Central) under integ-test/target once; prints its directory.
ensure_distribution() {
  local dist="$PWD/integ-test/target/distribution/opensearch-3.6.0"
  if [[ ! -f "$dist/bin/opensearch" ]]; then
    # run in integ-test: the plugin writes marker files to <project>/target (the repository root has
    # no target/ of its own); overWriteReleases: unpack even where a marker says it was done before
    echo "unpacking the OpenSearch 3.6.0 distribution (161 MB from Maven Central the first time; 10-60 s)" >&2
    ./mvnw -B -q -ntp -pl integ-test org.apache.maven.plugins:maven-dependency-plugin:3.8.1:unpack -Dmdep.overWriteReleases=true \
      -Dartifact=org.opensearch.distribution.integ-test-zip:opensearch:3.6.0:zip \
      -DoutputDirectory="$PWD/integ-test/target/distribution" >&2
    [[ -f "$dist/bin/opensearch" ]] || { echo "no OpenSearch distribution at $dist after unpacking" >&2; return 1; }
  fi
  echo "$dist"
}
