#!/usr/bin/env python3
"""Median of each metric per server, and the ratio, as a Markdown table.

Input: the JSON-lines file compare.sh writes, one record per run:
    {"scenario": "...", "server": "jetway"|"nats-server"|"mosquitto", "round": N, "result": {...}}
where "result" is the line jetway-bench printed (plus, for mqtt-sessions, the RSS fields
compare.sh adds). Each reference server present gets a column and a jetway / it ratio.
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
    "mqtt-pubsub": [
        ("delivered msgs/s", lambda r: None if "latency_us" in r else r["msgs_per_s"], "higher"),
        ("lost msgs", lambda r: r["lost"] if r["qos"] == 0 and "latency_us" not in r else None, "lower"),
        ("p50 latency µs", lambda r: r.get("latency_us", {}).get("p50"), "lower"),
        ("p99 latency µs", lambda r: r.get("latency_us", {}).get("p99"), "lower"),
    ],
    "mqtt-sessions": [
        ("sessions set up/s", lambda r: r["sessions_per_s"], "higher"),
        ("KB RSS / idle session", lambda r: r.get("kb_per_session"), "lower"),
        ("RSS with sessions MB", lambda r: r["rss_after_kb"] / 1024 if "rss_after_kb" in r else None, "lower"),
    ],
}
SERVERS = ("jetway", "nats-server", "mosquitto")


def fmt(value):
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 10 else f"{value:,.2f}"


def main(path):
    with open(path, encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    scenarios = list(dict.fromkeys(r["scenario"] for r in records))
    failures = [r for r in records if not r["result"].get("ok")]

    servers = [s for s in SERVERS if s == "jetway" or any(r["server"] == s for r in records)]
    refs = servers[1:]
    print(
        "| scenario | metric | "
        + " | ".join(f"{s} (median)" for s in servers)
        + " | "
        + " | ".join(f"jetway / {s}" for s in refs)
        + " | better |"
    )
    print("|---|---|" + "---:|" * (len(servers) + len(refs)) + "---|")
    for scenario in scenarios:
        runs = [r for r in records if r["scenario"] == scenario]
        mode = runs[0]["result"].get("mode") or runs[0].get("mode")
        for label, read, better in METRICS.get(mode, []):
            medians = {}
            for server in servers:
                values = [read(r["result"]) for r in runs if r["server"] == server and r["result"].get("ok")]
                values = [v for v in values if v is not None]
                medians[server] = statistics.median(values) if values else None
            if all(v is None for v in medians.values()):
                continue
            jw = medians["jetway"]
            ratios = [f"{jw / medians[s]:.2f}" if jw is not None and medians[s] else "—" for s in refs]
            cells = " | ".join(fmt(medians[s]) for s in servers)
            print(f"| {scenario} | {label} | {cells} | {' | '.join(ratios)} | {better} |")

    if failures:
        print()
        print(f"{len(failures)} run(s) failed:")
        for r in failures:
            print(f"- {r['scenario']} on {r['server']} (round {r['round']}): {r['result'].get('error', 'no output')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
