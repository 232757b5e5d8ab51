"""Time from exec to the wizard's first painted frame in a real terminal (tmux, 80x24), against `loratui --help`
measured the same way in the same run (the reference: Python, loratui's CLI, tmux's own overhead).

usage: .venv/bin/python bench/tui_first_paint.py PROJECT_DIR [--runs 5]

Each run starts a detached tmux session of 80x24 running the command and polls `capture-pane` every 5 ms until
the screen shows the expected text (the wizard's purpose line "Step N of 6", or the last line of --help). The figure
includes up to one poll interval. Needs tmux (apt-get install -y tmux)."""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

LORATUI = str(Path(sys.executable).with_name("loratui"))


def first_paint(command: str, expect: str, timeout: float = 20.0) -> float:
    session = f"paint{time.monotonic_ns()}"
    started = time.monotonic()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    f"{command}; sleep 30"], check=True)
    try:
        while time.monotonic() - started < timeout:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            if expect in screen:
                return time.monotonic() - started
            time.sleep(0.005)
        raise SystemExit(f"{command}: no {expect!r} on the screen after {timeout} s")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    wizard, helps = [], []
    for _ in range(args.runs):  # taking turns, so both see the same machine
        helps.append(first_paint(f"{shlex.quote(LORATUI)} --help", "Exit status:"))
        wizard.append(first_paint(f"{shlex.quote(LORATUI)} {shlex.quote(str(args.project))}", " of 6: "))
    print(f"{args.runs} runs each, 80x24 tmux, median (min-max):")
    print(f"  loratui --help          {statistics.median(helps):.3f} s ({min(helps):.3f}-{max(helps):.3f})")
    print(f"  wizard first frame      {statistics.median(wizard):.3f} s ({min(wizard):.3f}-{max(wizard):.3f})")
    print(f"  ratio wizard / --help   {statistics.median(wizard) / statistics.median(helps):.2f}")


if __name__ == "__main__":
    main()
