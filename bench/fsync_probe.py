#!/usr/bin/env python3
"""How long one small synchronous write takes on the disk under FOLDER.

Writes 128 bytes and calls os.fdatasync() in a loop for SECONDS (default 2) in a temp
file inside FOLDER, then prints one JSON line: median and p99 latency in µs, and ops/s.
A server that syncs before every publish ack cannot ack faster than about
window / median latency, so this puts the JetStream numbers in context.

    python3 bench/fsync_probe.py FOLDER [SECONDS]
"""

import json
import os
import statistics
import sys
import tempfile
import time

WRITE_SIZE = 128
# A bound on the loop even on a disk that ignores fdatasync (tmpfs, eatmydata).
MAX_OPS = 2_000_000


def probe(folder: str, seconds: float) -> dict:
    fd, path = tempfile.mkstemp(prefix="fsync-probe-", dir=folder)
    samples = []
    block = b"f" * WRITE_SIZE
    try:
        started = time.perf_counter()
        deadline = started + seconds
        while len(samples) < MAX_OPS:
            before = time.perf_counter()
            if before >= deadline:
                break
            os.write(fd, block)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - before)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()
    median = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    return {
        "folder": folder,
        "write_bytes": WRITE_SIZE,
        "ops": len(samples),
        "seconds": round(elapsed, 3),
        "median_us": round(median * 1e6, 1),
        "p99_us": round(p99 * 1e6, 1),
        "ops_per_s": round(len(samples) / elapsed),
    }


def main(argv) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    seconds = float(argv[2]) if len(argv) == 3 else 2.0
    print(json.dumps(probe(argv[1], seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
