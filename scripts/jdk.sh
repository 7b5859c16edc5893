# Finding a JDK 21+ (OpenSearch 3.x needs it; many machines default to Java 17).
# Sourced by ./mvnw, scripts/setup.sh and integ-test/src/test/scripts/node.sh.

java_major() { # major version of $1/bin/java, or 0
  local v
  v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | head -1) || true
  case "$v" in 1.*) echo "${v#1.}" | cut -d. -f1 ;; "") echo 0 ;; *) echo "${v%%.*}" ;; esac
}

# Prints JAVA_HOME when it is a JDK 21+, else the newest JDK 21+ under $MACH_JDK_SEARCH_DIRS
# (default /usr/lib/jvm /opt/java /usr/local/java; symlinked aliases skipped). Fails when none.
find_jdk21() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/javac" ]] && (( $(java_major "$JAVA_HOME") >= 21 )); then
    echo "$JAVA_HOME"; return 0
  fi
  local best="" best_v=0 d jdk v
  for d in ${MACH_JDK_SEARCH_DIRS:-/usr/lib/jvm /opt/java /usr/local/java}; do
    [[ -d "$d" ]] || continue
    for jdk in "$d"/*/; do
      jdk="${jdk%/}"
      [[ -x "$jdk/bin/javac" && ! -L "$jdk" ]] || continue
      v=$(java_major "$jdk")
      if (( v >= 21 && v > best_v )); then best="$jdk" best_v=$v; fi
    done
  done
  [[ -n "$best" ]] && echo "$best"
}
