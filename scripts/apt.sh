# apt_get: apt-get that waits for another apt/dpkg (sourced by scripts/setup.sh). Needs log() and
# the array SUDO (empty as root, else (sudo -n)).

# Runs apt-get "$@"; while another apt or dpkg holds its lock (an unattended upgrade, a second
# setup), waits for it with a line every 15 s, at most MACH_APT_LOCK_WAIT seconds (default 600).
apt_get() {
  local err deadline=$(( SECONDS + ${MACH_APT_LOCK_WAIT:-600} )) next_note=0
  err=$(mktemp)
  while true; do
    if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" 2>"$err"; then rm -f "$err"; return 0; fi
    if ! grep -q 'Could not get lock\|Unable to acquire\|Unable to lock' "$err"; then cat "$err" >&2; rm -f "$err"; return 1; fi
    if (( SECONDS >= deadline )); then
      cat "$err" >&2; rm -f "$err"; log "another apt/dpkg still holds the lock after ${MACH_APT_LOCK_WAIT:-600} s; run setup again later"
      return 1
    fi
    if (( SECONDS >= next_note )); then
      log "another apt/dpkg holds the package lock ($(grep -o 'held by process [0-9]* ([^)]*)' "$err" | head -1 || true)); waiting for it"
      next_note=$(( SECONDS + 15 ))
    fi
    sleep 3
  done
}
