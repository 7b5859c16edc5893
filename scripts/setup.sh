#!/usr/bin/env bash
# Installs what the demo and the tests need and a fresh Debian machine lacks:
#   a JDK 21+ (OpenSearch 3.x), Maven, and Debian's Python packages for training
#   (python3-torch python3-onnx python3-numpy python3-matplotlib python3-tqdm python3-pytest
#   libopenblas0-pthread). No PyPI: Python packages come from Debian, for /usr/bin/python3.
# As root it runs apt-get; otherwise it uses sudo when that works without a password, and
# else prints the exact command to run and fails.
set -euo pipefail

DEB_PYTHON=(python3 python3-torch python3-onnx python3-numpy python3-matplotlib python3-tqdm python3-pytest libopenblas0-pthread)

log() { echo "setup: $*" >&2; }

source "$(dirname "$0")/jdk.sh"
have_jdk21() { find_jdk21 >/dev/null; }

missing_debs() { # prints the packages of "$@" that are not installed
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

source "$(dirname "$0")/apt.sh"

APT_UPDATED=0
SUDO=()
apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
      log "missing: $*"
      log "run as root: apt-get update && apt-get install -y --no-install-recommends $*"
      exit 1
    fi
  fi
  if (( APT_UPDATED == 0 )); then
    log "apt-get update (10-60 s)"
    apt_get update -qq
    APT_UPDATED=1
  fi
  local note=""; [[ " $* " == *" python3-torch "* ]] && note=", PyTorch and its libraries are ~900 MB: 1-3 min"
  log "apt-get install $* (no output until done$note)"
  local t0=$SECONDS
  apt_get install -y -qq --no-install-recommends "$@" >/dev/null
  log "installed in $(( SECONDS - t0 )) s"
}

apt_candidate() { # true when apt can install package $1
  local c
  c=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [[ -n "$c" && "$c" != "(none)" ]]
}

command -v dpkg-query >/dev/null || { log "not a Debian-like system: install a JDK 21+, Maven and PyTorch 1.13+ with onnx, numpy, matplotlib, tqdm, pytest for /usr/bin/python3 yourself"; exit 1; }

# Java: a JDK 21+ and Maven.
if ! have_jdk21; then
  if (( APT_UPDATED == 0 )) && [[ $(id -u) -eq 0 ]]; then log "apt-get update (10-60 s)"; apt_get update -qq; APT_UPDATED=1; fi
  jdk=""
  for p in openjdk-21-jdk-headless temurin-21-jdk openjdk-25-jdk-headless temurin-25-jdk; do
    if apt_candidate "$p"; then jdk=$p; break; fi
  done
  if [[ -z "$jdk" ]]; then
    log "no JDK 21+ found (JAVA_HOME, /usr/lib/jvm, /opt/java, /usr/local/java) and apt offers none."
    log "install one (e.g. Eclipse Temurin 21 from adoptium.net into /usr/lib/jvm) or set JAVA_HOME to it."
    exit 1
  fi
  apt_install "$jdk"
  have_jdk21 || { log "installed $jdk but still no JDK 21+ found"; exit 1; }
fi
command -v mvn >/dev/null || apt_install maven

# Python for training and the Python tests.
mapfile -t missing < <(missing_debs "${DEB_PYTHON[@]}")
if (( ${#missing[@]} )); then apt_install "${missing[@]}"; fi
/usr/bin/python3 -c 'import torch, onnx, numpy, matplotlib, tqdm, pytest' \
  || { log "/usr/bin/python3 cannot import torch/onnx/numpy/matplotlib/tqdm/pytest"; exit 1; }
log "ok: JDK 21+, Maven, /usr/bin/python3 with torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
