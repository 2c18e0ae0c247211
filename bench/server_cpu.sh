#!/usr/bin/env bash
# Server CPU per operation: starts ONE server, runs one jetway-bench workload against it, and
# reports the server's user/system CPU and context switches per operation (from /proc).
#
#   bench/server_cpu.sh js-w1 jetway|nats            JetStream publish, window 1, file storage,
#                                                    lazy sync (Jetway sync_interval = "2m",
#                                                    nats-server -js), N=20000 messages
#   bench/server_cpu.sh mqtt-sessions jetway|mosquitto
#                                                    N=4000 persistent MQTT sessions set up
#                                                    (64 at a time, one QoS 1 subscription each)
#   bench/server_cpu.sh mqtt-subscriptions jetway|nats|mosquitto
#                                                    one persistent MQTT session subscribing
#                                                    N=4000 topics, PER=1 per SUBSCRIBE (an
#                                                    operation is a SUBSCRIBE packet); prints
#                                                    the workload's JSON too (SUBACK times of
#                                                    the first and last tenth; with PUBLISH=M,
#                                                    the rate the session then receives M
#                                                    QoS 1 messages on one of its topics)
#
# Environment: N (operations), JETWAY_BIN, NATS_SERVER_BIN, MOSQUITTO_BIN, BENCH_BIN,
# JETWAY_SYNC (Jetway's sync_interval for mqtt-sessions; default: fsync before ack).
# Loopback only; the server it started is stopped by its PID.
set -euo pipefail
mode=${1:?mode: js-w1 | mqtt-sessions | mqtt-subscriptions}
server=${2:?server: jetway | nats | mosquitto}
root=$(cd "$(dirname "$0")/.." && pwd)
jetway_bin=${JETWAY_BIN:-$root/target/release/jetway}
nats_bin=${NATS_SERVER_BIN:-$root/bench/.venv/bin/nats-server}
mosquitto_bin=${MOSQUITTO_BIN:-/usr/sbin/mosquitto}
bench_bin=${BENCH_BIN:-$root/target/release/jetway-bench}
work=$(mktemp -d /tmp/jetway-server-cpu.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

case "$mode/$server" in
  js-w1/jetway)
    printf '[jetstream]\nsync_interval = "2m"\n' >"$work/c.toml"
    "$jetway_bin" -a 127.0.0.1 -p "$port" -m 0 --mqtt_port 0 -js -sd "$work/store" -c "$work/c.toml" >"$work/log" 2>&1 &
    ;;
  js-w1/nats)
    "$nats_bin" -a 127.0.0.1 -p "$port" -js -sd "$work/store" >"$work/log" 2>&1 &
    ;;
  mqtt-sessions/jetway|mqtt-subscriptions/jetway)
    printf '[mqtt]\nhost = "127.0.0.1"\nport = %s\n' "$port" >"$work/c.toml"
    [[ -n "${JETWAY_SYNC:-}" ]] && printf '[jetstream]\nsync_interval = "%s"\n' "$JETWAY_SYNC" >>"$work/c.toml"
    "$jetway_bin" -a 127.0.0.1 -p -1 -m 0 -sd "$work/store" -c "$work/c.toml" >"$work/log" 2>&1 &
    ;;
  mqtt-sessions/mosquitto|mqtt-subscriptions/mosquitto)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/m.conf"
    "$mosquitto_bin" -c "$work/m.conf" >"$work/log" 2>&1 &
    ;;
  mqtt-subscriptions/nats)
    # nats-server's MQTT makes a consumer per QoS 1 subscription, and caps a stream at
    # 1,000 consumers by default.
    printf 'server_name: bench\njetstream {\n  store_dir: "%s"\n  limits {\n    default_max_consumers: 100000\n  }\n}\nmqtt {\n  listen: "127.0.0.1:%s"\n}\n' "$work/store" "$port" >"$work/n.conf"
    "$nats_bin" -a 127.0.0.1 -p -1 -c "$work/n.conf" >"$work/log" 2>&1 &
    ;;
  *) echo "server_cpu.sh: unknown mode/server $mode/$server" >&2; exit 2 ;;
esac
pid=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

counters() { # user+system clock ticks, then voluntary+involuntary context switches of all threads
  awk '{print $14, $15}' "/proc/$pid/stat"
  cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'
}
read -r u0 s0 < <(counters | head -1); c0=$(counters | tail -1)
case "$mode" in
  js-w1) n=${N:-20000}
    "$bench_bin" --timeout-secs 120 js-pub --url "nats://127.0.0.1:$port" --size 128 --msgs "$n" --window 1 --storage file >"$work/out"
    rate=$(python3 -c "import json; print(json.load(open('$work/out'))['msgs_per_s'])") ;;
  mqtt-sessions) n=${N:-4000}
    "$bench_bin" --timeout-secs 120 mqtt-sessions --count "$n" --persistent --host 127.0.0.1 --port "$port" >"$work/out"
    rate=$(python3 -c "import json; print(json.load(open('$work/out'))['sessions_per_s'])") ;;
  mqtt-subscriptions) topics=${N:-4000} per=${PER:-1}
    n=$(( (topics + per - 1) / per ))
    "$bench_bin" --timeout-secs 600 mqtt-subscriptions --topics "$topics" --per-subscribe "$per" --publish "${PUBLISH:-0}" --host 127.0.0.1 --port "$port" >"$work/out" ||
      { cat "$work/out"; exit 1; }
    cat "$work/out"
    rate=$(python3 -c "import json; o=json.load(open('$work/out')); print(o['subscribe_packets'] / max(o['elapsed_s'], 0.001))") ;;
esac
read -r u1 s1 < <(counters | head -1); c1=$(counters | tail -1)
tick=$(getconf CLK_TCK)
python3 - "$mode" "$server" "$rate" "$n" "$tick" "$u0" "$u1" "$s0" "$s1" "$c0" "$c1" <<'PY'
import sys
mode, server, rate, n, tick = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
u0, u1, s0, s1, c0, c1 = map(int, sys.argv[6:])
us = lambda ticks: ticks * 1e6 / tick / n
print(f"{mode} {server}: {rate:,.0f}/s, server CPU per operation {us(u1-u0):.0f} µs user + {us(s1-s0):.0f} µs system, {(c1-c0)/n:.2f} context switches")
PY
