#!/usr/bin/env python3
"""How fast the local SMSC (messaging/carriers/local/smsc.js) is: so that we know it is never the bottleneck.

Starts smsc.js on a free loopback port and loads it with load.js (beside it: node-smpp, one transceiver bind,
a window of submit_sm with registered_delivery, every receipt answered at once), then prints one JSON line:
the client's submit_sm_per_s and receipts_per_s, counted from the first submit, beside the SMSC's own /stats.

    python3 bench/smsc_rate.py -n 100000 --window 50 [--log] [--receipt-delay-ms 0]

Needs node and `make local-carriers`; touches nothing but loopback (and a temporary log file with --log).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

LOCAL = Path(__file__).resolve().parents[1] / "messaging" / "carriers" / "local"
NODE = shutil.which("node") or "node"


def smsc_start(args: argparse.Namespace, log: str) -> tuple[subprocess.Popen, int, int]:
    command = [NODE, str(LOCAL / "smsc.js"), "--port", "0", "--stats-port", "0",
               "--receipt-delay-ms", str(args.receipt_delay_ms)]
    if log:
        command += ["--log", log]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    ports = {}
    assert process.stdout is not None
    for line in process.stdout:
        word, port = line.split()
        ports[word] = int(port)
        if word == "ready":
            break
    return process, ports["ready"], ports["stats"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--receipt-delay-ms", type=int, default=0)
    parser.add_argument("--log", action="store_true", help="let the SMSC write its submit_sm log (as make run does)")
    args = parser.parse_args()
    if not (LOCAL / "node_modules" / "smpp").is_dir():
        sys.exit("node-smpp is not installed: run `make local-carriers`")
    with tempfile.TemporaryDirectory() as tmp:
        log = str(Path(tmp) / "smsc.log") if args.log else ""
        smsc, port, stats_port = smsc_start(args, log)
        try:
            load = subprocess.run([NODE, str(LOCAL / "load.js"), "--port", str(port), "--count", str(args.count),  # noqa: S603
                                   "--window", str(args.window)], capture_output=True, text=True, check=True,
                                  timeout=600)
            with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats", timeout=5) as answer:  # noqa: S310 - loopback
                stats = json.load(answer)
        finally:
            smsc.terminate()
            smsc.wait(10)
        logged = sum(1 for _ in Path(log).open()) if log else None
    client = json.loads(load.stdout.strip().splitlines()[-1])
    print(json.dumps({"submit_sm_per_s": client["submit_sm_per_s"], "receipts_per_s": client["receipts_per_s"],
                      "count": args.count, "window": args.window, "receipt_delay_ms": args.receipt_delay_ms,
                      "client": client, "smsc": stats, "log_lines": logged}))


if __name__ == "__main__":
    main()
