#!/usr/bin/env python3
"""Median of each metric per server, and the ratio, as a Markdown table.

Input: the JSON-lines file compare.sh writes, one record per run:
    {"scenario": "...", "server": "jetway"|"nats-server", "round": N, "result": {...}}
where "result" is the line jetway-bench printed.
"""

import json
import statistics
import sys

# (scenario, label shown, how to read the number from a result, which way is better)
METRICS = {
    "pubsub": [
        ("delivered msgs/s", lambda r: r["delivered_msgs_per_s"], "higher"),
        ("delivered MB/s", lambda r: r["delivered_mb_per_s"], "higher"),
    ],
    "reqrep": [
        ("requests/s", lambda r: r["requests_per_s"], "higher"),
        ("p50 latency µs", lambda r: r["latency_us"]["p50"], "lower"),
        ("p99 latency µs", lambda r: r["latency_us"]["p99"], "lower"),
    ],
    "js-pub": [
        ("acked msgs/s", lambda r: r["msgs_per_s"], "higher"),
        ("MB/s", lambda r: r["mb_per_s"], "higher"),
        ("ack p50 µs", lambda r: r["ack_latency_us"]["p50"], "lower"),
        ("ack p99 µs", lambda r: r["ack_latency_us"]["p99"], "lower"),
    ],
    "js-consume": [
        ("consumed msgs/s", lambda r: r["msgs_per_s"], "higher"),
        ("MB/s", lambda r: r["mb_per_s"], "higher"),
    ],
}
SERVERS = ("jetway", "nats-server")


def fmt(value):
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 10 else f"{value:,.2f}"


def main(path):
    with open(path, encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    scenarios = list(dict.fromkeys(r["scenario"] for r in records))
    failures = [r for r in records if not r["result"].get("ok")]

    print("| scenario | metric | jetway (median) | nats-server (median) | jetway / nats-server | better |")
    print("|---|---|---:|---:|---:|---|")
    for scenario in scenarios:
        runs = [r for r in records if r["scenario"] == scenario]
        mode = runs[0]["result"].get("mode") or runs[0].get("mode")
        for label, read, better in METRICS.get(mode, []):
            medians = {}
            for server in SERVERS:
                values = [read(r["result"]) for r in runs if r["server"] == server and r["result"].get("ok")]
                medians[server] = statistics.median(values) if values else None
            jw, ref = medians["jetway"], medians["nats-server"]
            ratio = f"{jw / ref:.2f}" if jw is not None and ref else "—"
            print(f"| {scenario} | {label} | {fmt(jw)} | {fmt(ref)} | {ratio} | {better} |")

    if failures:
        print()
        print(f"{len(failures)} run(s) failed:")
        for r in failures:
            print(f"- {r['scenario']} on {r['server']} (round {r['round']}): {r['result'].get('error', 'no output')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
