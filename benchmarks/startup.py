"""``agenttop run`` as a user starts it, in a pseudo-terminal: time to first paint, time
until the header says the receiver is receiving, and how long a busy port takes to be
reported.

Each run starts ``agenttop run --db FILE --grpc 127.0.0.1:PORT --http off`` on a fresh
file in a 120x36 pseudo-terminal and reads what it draws: first paint is the dashboard's
first card title (``PROMPT``), "receiving" the header's ``receiving on``. Then ``q``.
The busy port: ``agenttop run`` on a port another socket listens on, until it exits.
Median of ``--runs``; prints one JSON line.

    python benchmarks/startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_process import free_port  # noqa: E402
from tests.test_run_e2e import Terminal  # noqa: E402


def until(term: Terminal, text: str, started: float, timeout: float = 60) -> float:
    while time.monotonic() - started < timeout:
        term.read(0.02)
        if text in term.text():
            return time.monotonic() - started
    raise RuntimeError(f"{text!r} never appeared")


def one_run(tmp: Path, n: int) -> tuple[float, float]:
    started = time.monotonic()
    term = Terminal([sys.executable, "-m", "agenttop.cli", "run", "--db", str(tmp / f"{n}.db"),
                     "--grpc", f"127.0.0.1:{free_port()}", "--http", "off"], cols=120, rows=36)
    try:
        paint = until(term, "PROMPT", started)
        receiving = until(term, "receiving on", started)
        term.send("q")
        term.wait_exit(30)
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    return paint, receiving


def busy_port(tmp: Path) -> float:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "agenttop.cli", "run", "--db",
                        str(tmp / "busy.db"), "--grpc", f"127.0.0.1:{busy.getsockname()[1]}"],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(Path(tmp), n) for n in range(args.runs)]
        busy = [busy_port(Path(tmp)) for _ in range(args.runs)]
    print(json.dumps({
        "benchmark": "startup",
        "first_paint_s": round(statistics.median(r[0] for r in runs), 2),
        "receiving_s": round(statistics.median(r[1] for r in runs), 2),
        "busy_port_reported_s": round(statistics.median(busy), 2),
        "runs": args.runs, "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
