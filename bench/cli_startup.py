"""Start-up time of light CLI commands, against a bare `python -c pass` measured in the same run.

usage: .venv/bin/python bench/cli_startup.py [--runs N]
The budget is 0.3 s wall per command (issue: foundation); the ratio to a bare interpreter shows how much of
that is loratui's own imports.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

LORATUI = [sys.executable, "-m", "loratui"]
SCRIPT = Path(sys.executable).with_name("loratui")  # the console script users run


def timed(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    launcher = [str(SCRIPT)] if SCRIPT.exists() else LORATUI
    reference = timed([sys.executable, "-c", "pass"], runs)
    rows = [("python -c pass (reference)", reference)]
    for label, args in (("loratui --help", ["--help"]), ("loratui presets list", ["presets", "list"]),
                        ("loratui settings", ["settings"])):
        rows.append((label, timed(launcher + args, runs)))
    print(f"{'command':<28} {'median s':>9} {'x reference':>12}   ({runs} runs each)")
    for label, seconds in rows:
        print(f"{label:<28} {seconds:>9.3f} {seconds / reference:>12.1f}")


if __name__ == "__main__":
    main()
