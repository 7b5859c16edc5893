#!/usr/bin/env bash
# Start / stop one local OpenSearch node for the REST tests and the demo.
#
#   node.sh start [--fresh] DIST_DIR NODE_DIR [PLUGIN_ZIP]
#       starts a node in NODE_DIR and waits for yellow. A NODE_DIR that holds data (a node kept by
#       ./demo.sh --keep, say) is started again with its data, indices and models, its plugin
#       reinstalled only when PLUGIN_ZIP changed; a node already running there with that plugin is
#       left running. Otherwise, or with --fresh, NODE_DIR is made anew from the unpacked DIST_DIR
#       (anything in it deleted) and the plugin installed.
#   node.sh stop NODE_DIR                          stops it (TERM, then KILL), leaves no process
#
# Environment:
#   OPENSEARCH_JAVA_HOME  JDK 21+ for the node (default: JAVA_HOME if 21+, else the newest
#                         JDK 21+ under /usr/lib/jvm, /opt/java, /usr/local/java)
#   MACH_NODE_HEAP        heap size (default 1g)
#   MACH_NODE_WATCH_PID   stop the node when this process exits (default: the caller, $PPID;
#                         0 disables). Guards against a killed Maven leaving a node behind.
#   MACH_NODE_USER        user that runs the node when started as root (default opensearch-it)
#   MACH_NODE_SETTINGS    more opensearch.yml lines, appended as given (e.g. the benchmarks'
#                         "mach.inference.intra_op_threads: 2"); a node already running is reused
#                         as it is: stop it first to change them
#
# Writes NODE_DIR/http.port, NODE_DIR/node.pid; the node log is NODE_DIR/logs/mach-it.log.
# Model bundles go to NODE_DIR/models/<model id>, the node setting mach.models.dir. It lies outside
# config/ on purpose: the plugin must read bundles wherever the operator puts them (a real node's
# security policy denies that unless the plugin reads in a privileged block).
set -euo pipefail

CLUSTER=mach-it
RUN_USER="${MACH_NODE_USER:-opensearch-it}"
AS_ROOT=0; [[ $(id -u) -eq 0 ]] && AS_ROOT=1
FRESH=0

die() { echo "node.sh: $*" >&2; exit 1; }

# HTTP GET over bash's /dev/tcp: no curl or python needed on a bare machine.
http_get() { # port path
  local port=$1 path=$2
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  timeout 10 cat <&3 || true
  exec 3<&- 3>&-
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A random port below the kernel's ephemeral range (outgoing connections take ports from that range,
# and a connect test cannot see them), not listened on.
free_port() {
  local p i lo=32768
  read -r lo _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  (( lo > 12000 )) || lo=32768
  for i in $(seq 1 50); do
    p=$(( 10000 + RANDOM % (lo - 10000) ))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

source "$(dirname "$0")/../../../../scripts/jdk.sh"

# OPENSEARCH_JAVA_HOME as given; else JAVA_HOME when it is 21+; else the newest JDK 21+ under
# /usr/lib/jvm, /opt/java, /usr/local/java (as ./mvnw does).
find_java_home() {
  local jh="${OPENSEARCH_JAVA_HOME:-}"
  if [[ -n "$jh" ]]; then
    [[ -x "$jh/bin/java" ]] || die "OPENSEARCH_JAVA_HOME=$jh has no bin/java"
    (( $(java_major "$jh") >= 21 )) || die "OpenSearch 3.6.0 needs Java 21+, OPENSEARCH_JAVA_HOME=$jh is Java $(java_major "$jh")"
    echo "$jh"; return
  fi
  find_jdk21 || die "no Java 21+ found for OpenSearch 3.6.0: set OPENSEARCH_JAVA_HOME to a JDK 21+"
}

# absolute path; the last part is kept as is (it may be a link to a node home under /tmp)
abs_path() { echo "$(readlink -m "$(dirname "$1")")/$(basename "$1")"; }

stop_node() { # node_dir
  local dir=$1 pid
  if [[ -f "$dir/watchdog.pid" ]]; then
    kill "$(cat "$dir/watchdog.pid")" 2>/dev/null || true
    rm -f "$dir/watchdog.pid"
  fi
  [[ -f "$dir/node.pid" ]] || { echo "node.sh: no node running in $dir"; return 0; }
  pid=$(cat "$dir/node.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "node.sh: node $pid did not stop in 30 s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
  fi
  kill -0 "$pid" 2>/dev/null && die "node $pid is still running"
  rm -f "$dir/node.pid"
  echo "node.sh: node $pid stopped"
}

# Installs the plugin zip into a node home and records its sha256 (a later start compares it).
install_plugin() { # node_home plugin_zip plugin_sha java_home
  local dir=$1 plugin=$2
  echo "node.sh: installing $(basename "$plugin")"
  OPENSEARCH_JAVA_HOME="$4" "$dir/bin/opensearch-plugin" install --batch "file://$(readlink -f "$plugin")" \
    > "$dir/logs/plugin-install.log" 2>&1 || { cat "$dir/logs/plugin-install.log" >&2; die "plugin install failed"; }
  echo "$3" > "$dir/plugin.sha256"
}

# A new node home: NODE_DIR deleted, the distribution copied, the plugin installed.
new_node_home() { # dist node_dir plugin plugin_sha java_home
  local dist=$1 dir=$2 plugin=$3
  if [[ -L "$dir" ]]; then rm -rf "$(readlink -f "$dir")"; rm -f "$dir"; fi
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  if (( AS_ROOT )) && ! runuser -u "$RUN_USER" -- test -x "$(dirname "$dir")" 2>/dev/null; then
    # a parent directory is closed to the node's user (a private home, say): keep the node
    # home under /tmp and leave a link where the caller expects it
    local real; real=$(mktemp -d /tmp/mach-node.XXXXXX)
    rmdir "$real"; cp -a "$dist" "$real"; chmod 755 "$real"
    ln -s "$real" "$dir"
    echo "node.sh: $RUN_USER cannot reach $(dirname "$dir"); node home is $real"
  else
    cp -a "$dist" "$dir"
  fi
  dir=$(readlink -f "$dir")
  chmod +x "$dir"/bin/*
  mkdir -p "$dir/models" "$dir/data" "$dir/logs"
  if [[ -n "$plugin" ]]; then install_plugin "$dir" "$plugin" "$4" "$5"; fi
}

# A node home kept with its data: only the plugin is replaced, when the zip changed.
keep_node_home() { # node_dir plugin plugin_sha java_home
  local dir; dir=$(readlink -f "$1")
  echo "node.sh: $1 holds a node's data: starting it again with its indices and models (--fresh for an empty node)"
  mkdir -p "$dir/models" "$dir/logs"
  if [[ -n "$2" && "$(cat "$dir/plugin.sha256" 2>/dev/null)" != "$3" ]]; then
    OPENSEARCH_JAVA_HOME="$4" "$dir/bin/opensearch-plugin" remove mach-retrieval > "$dir/logs/plugin-remove.log" 2>&1 || true
    install_plugin "$dir" "$2" "$3" "$4"
  fi
}

start_node() { # dist_dir node_dir [plugin_zip]
  local dist=$1 dir=$2 plugin=${3:-}
  [[ -x "$dist/bin/opensearch" || -f "$dist/bin/opensearch" ]] || die "no OpenSearch distribution at $dist"
  [[ -z "$plugin" || -f "$plugin" ]] || die "plugin zip not found: $plugin (build it first: ./mvnw -pl plugin package)"
  local java_home; java_home=$(find_java_home)
  dist=$(readlink -f "$dist")
  if (( AS_ROOT )) && ! id "$RUN_USER" >/dev/null 2>&1; then
    # OpenSearch refuses to run as root: it runs as this unprivileged user
    useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER" 2>/dev/null \
      || useradd -r -M -s /bin/false "$RUN_USER" || die "cannot create user $RUN_USER"
  fi

  local plugin_sha=""
  [[ -n "$plugin" ]] && plugin_sha=$(sha256sum "$plugin" | cut -d' ' -f1)
  if (( ! FRESH )) && [[ -f "$dir/node.pid" && -f "$dir/http.port" ]] && kill -0 "$(cat "$dir/node.pid")" 2>/dev/null \
      && [[ "$(cat "$dir/plugin.sha256" 2>/dev/null)" == "$plugin_sha" ]]; then
    echo "node.sh: node $(cat "$dir/node.pid") already running at http://127.0.0.1:$(cat "$dir/http.port") with this plugin: reusing it"
    return 0
  fi
  # A node left over from an earlier run in the same place would hold the ports and files.
  if [[ -f "$dir/node.pid" ]]; then stop_node "$dir"; fi
  if (( ! FRESH )) && [[ -f "$dir/bin/opensearch" && -n "$(ls -A "$dir/data" 2>/dev/null)" ]]; then
    keep_node_home "$dir" "$plugin" "$plugin_sha" "$java_home"
  else
    new_node_home "$dist" "$dir" "$plugin" "$plugin_sha" "$java_home"
  fi
  dir=$(readlink -f "$dir") # the real home: the node's user may not pass through the link
  local -a run=(env "OPENSEARCH_JAVA_HOME=$java_home")
  if (( AS_ROOT )); then
    chown -R "$RUN_USER" "$dir/"
    runuser -u "$RUN_USER" -- test -r "$dir/bin/opensearch" \
      || die "user $RUN_USER cannot read $dir (a parent directory is not world-readable)"
    runuser -u "$RUN_USER" -- test -x "$java_home/bin/java" \
      || die "user $RUN_USER cannot run $java_home/bin/java"
    run=(runuser -u "$RUN_USER" -- "${run[@]}")
  fi

  # Ports are picked free but another process may take one before the node binds it: retry.
  local attempt http_port transport_port health node_pid
  for attempt in 1 2 3; do
    http_port=$(free_port); transport_port=$(free_port)
    while [[ "$transport_port" == "$http_port" ]]; do transport_port=$(free_port); done
    cat > "$dir/config/opensearch.yml" <<EOF
cluster.name: $CLUSTER
node.name: $CLUSTER-0
network.host: 127.0.0.1
http.port: $http_port
transport.port: $transport_port
discovery.type: single-node
path.data: $dir/data
path.logs: $dir/logs
# a full shared disk must not turn the test indices read-only
cluster.routing.allocation.disk.threshold_enabled: false
EOF
    # the setting exists only with the plugin installed (an unknown setting stops the node)
    if [[ -n "$plugin" ]]; then echo "mach.models.dir: $dir/models" >> "$dir/config/opensearch.yml"; fi
    if [[ -n "${MACH_NODE_SETTINGS:-}" ]]; then printf '%s\n' "$MACH_NODE_SETTINGS" >> "$dir/config/opensearch.yml"; fi
    printf -- '-Xms%s\n-Xmx%s\n' "${MACH_NODE_HEAP:-1g}" "${MACH_NODE_HEAP:-1g}" > "$dir/config/jvm.options.d/heap.options"
    echo "$http_port" > "$dir/http.port"
    if (( AS_ROOT )); then chown -R "$RUN_USER" "$dir/config" "$dir/logs"; fi
    rm -f "$dir/logs/console.log"

    # -d daemonizes; output goes to a file (a pipe would be held open by the daemon).
    "${run[@]}" "$dir/bin/opensearch" -d -p "$dir/node.pid" > "$dir/logs/console.log" 2>&1 \
      || { cat "$dir/logs/console.log" >&2; die "node failed to start"; }

    health="" node_pid=""
    local started=$SECONDS deadline=$(( SECONDS + ${MACH_NODE_START_TIMEOUT:-180} )) next_note=$(( SECONDS + 15 ))
    echo "node.sh: starting the node on port $http_port (20-90 s)"
    while (( SECONDS < deadline )); do
      if (( SECONDS >= next_note )); then
        echo "node.sh: still starting after $(( SECONDS - started )) s (log: $dir/logs/$CLUSTER.log)"
        next_note=$(( SECONDS + 15 ))
      fi
      [[ -f "$dir/node.pid" ]] && node_pid=$(cat "$dir/node.pid")
      if [[ -n "$node_pid" ]] && ! kill -0 "$node_pid" 2>/dev/null; then health="died"; break; fi
      # with -d a failed start can still exit 0 and write no pid file
      if grep -qs 'uncaught exception in thread \[main\]' "$dir/logs/console.log"; then health="died"; break; fi
      if [[ -n "$node_pid" ]]; then
        health=$(http_get "$http_port" "/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null || true)
        if grep -q '"status":"\(yellow\|green\)"' <<<"$health"; then
          # the answer must come from our node, not from another one on the same port
          http_get "$http_port" "/_nodes/_local/process?filter_path=nodes.*.process.id" 2>/dev/null \
            | grep -q "\"id\":$node_pid[,}]" && break
          health="another process answers on port $http_port"; break
        fi
      fi
      health=""; sleep 1
    done
    if [[ -n "$health" && "$health" != died && "$health" != another* ]]; then break; fi
    stop_node "$dir" >/dev/null 2>&1 || true
    if (( attempt < 3 )) && { [[ "$health" == another* ]] || grep -qs 'BindException\|Address already in use' "$dir/logs/$CLUSTER.log" "$dir/logs/console.log"; }; then
      echo "node.sh: port taken (${health:-bind failed}), retrying with other ports" >&2
      # keep the failed attempt's logs out of the node log the tests read
      mkdir -p "$dir/failed-start-$attempt" && mv "$dir"/logs/* "$dir/failed-start-$attempt/" 2>/dev/null || true
      continue
    fi
    echo "node.sh: node did not become yellow (${health:-timeout}); last log lines:" >&2
    tail -n 40 "$dir/logs/$CLUSTER.log" "$dir/logs/console.log" >&2 2>/dev/null || true
    exit 1
  done

  # Watchdog: stop the node when the caller (e.g. Maven) goes away without calling stop.
  local watch=${MACH_NODE_WATCH_PID:-$PPID}
  if [[ "$watch" != 0 ]]; then
    setsid bash -c 'while kill -0 '"$watch"' 2>/dev/null && kill -0 '"$node_pid"' 2>/dev/null; do sleep 2; done
                    kill -TERM '"$node_pid"' 2>/dev/null
                    for i in $(seq 60); do kill -0 '"$node_pid"' 2>/dev/null || exit 0; sleep 0.5; done
                    kill -KILL '"$node_pid"' 2>/dev/null' \
      < /dev/null > /dev/null 2>&1 &
    echo $! > "$dir/watchdog.pid"
  fi
  echo "node.sh: node $node_pid up at http://127.0.0.1:$http_port (home $dir)"
}

cmd=${1:-}; shift || true
if [[ "$cmd" == start && "${1:-}" == --fresh ]]; then FRESH=1; shift; fi
case "$cmd" in
  start) [[ $# -ge 2 ]] || die "usage: node.sh start [--fresh] DIST_DIR NODE_DIR [PLUGIN_ZIP]"; start_node "$1" "$(abs_path "$2")" "${3:-}" ;;
  stop)  [[ $# -eq 1 ]] || die "usage: node.sh stop NODE_DIR"; stop_node "$(abs_path "$1")" ;;
  *) die "usage: node.sh start [--fresh] DIST_DIR NODE_DIR [PLUGIN_ZIP] | stop NODE_DIR" ;;
esac
