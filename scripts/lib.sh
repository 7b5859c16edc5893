# Shared steps of demo.sh and scripts/relevance.sh (source it from the repository root).

# Builds the plugin zip (tests skipped) and prints its path.
build_plugin_zip() {
  echo "building the plugin zip (./mvnw package, tests skipped: 15-60 s)" >&2
  ./mvnw -B -q -ntp -pl plugin -am package -DskipTests >&2
  ls -t plugin/target/releases/mach-retrieval-*.zip | head -1
}

# Unpacks OpenSearch 3.6.0 (Maven Central) under integ-test/target once; prints its directory.
ensure_distribution() {
  local dist="$PWD/integ-test/target/distribution/opensearch-3.6.0"
  if [[ ! -f "$dist/bin/opensearch" ]]; then
    # in integ-test's build directory: the plugin's marker files go to <project>/target, and the
    # repository root has no target/ of its own
    echo "unpacking the OpenSearch 3.6.0 distribution (161 MB from Maven Central the first time; 10-60 s)" >&2
    ./mvnw -B -q -ntp -pl integ-test org.apache.maven.plugins:maven-dependency-plugin:3.8.1:unpack \
      -Dartifact=org.opensearch.distribution.integ-test-zip:opensearch:3.6.0:zip \
      -DoutputDirectory="$PWD/integ-test/target/distribution" >&2
  fi
  echo "$dist"
}
