"""How long a key press takes to show its effect in the wizard on a big project (default 500 pictures), in a real
terminal (tmux, 80x24), against the same measurement of a bare Textual list of as many rows in the same run (the
reference: Python, Textual and tmux's own cost per key).

usage: .venv/bin/python bench/tui_keys.py [--pictures DIR] [--count 500] [--presses 15]

For each press: the pane is captured, the key sent with `tmux send-keys`, and `capture-pane -e` polled until the
screen changes (the cursor moved, `keep` became `EXCL`, the filter narrowed the list); the next key waits until
the screen has been still for 0.3 s. Figures are medians, with up to one poll (~5 ms) included. The pictures are
drawn once by the demo's generator into ``--pictures`` (reused when it holds enough files). It also times the
Images scan from `^g 1` to `Scan done`, cold (no cache) and warm (the cache under .loratui/ the first made).
Needs tmux (apt-get install -y tmux)."""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORATUI = str(Path(sys.executable).with_name("loratui"))
BARE_APP = """
import sys
from textual.app import App
from textual.widgets import OptionList

class Bare(App):
    def compose(self):
        yield OptionList(*[f"  keep  demo_{n:03}.png   1024x1536" for n in range(int(sys.argv[1]))])

    def on_mount(self):
        self.query_one(OptionList).focus()
        self.query_one(OptionList).highlighted = 0

Bare().run()
"""


class Pane:
    """A detached tmux session running one command at 80x24."""

    def __init__(self, command: str) -> None:
        self.name = f"keys{time.monotonic_ns()}"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "80", "-y", "24",
                        f"{command}; sleep 60"], check=True)

    def text(self, styled: bool = False) -> str:
        """The pane's text; ``styled`` with its colours and attributes (the bare list's cursor is only that)."""
        flags = ["-p", "-e"] if styled else ["-p"]
        return subprocess.run(["tmux", "capture-pane", *flags, "-t", self.name], capture_output=True,
                              text=True).stdout

    def send(self, key: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)

    def wait_for(self, text: str, timeout: float = 600.0) -> float:
        started = time.monotonic()
        while text not in self.text():
            if time.monotonic() - started > timeout:
                raise SystemExit(f"no {text!r} on the screen after {timeout:.0f} s:\n{self.text()}")
            time.sleep(0.01)
        return time.monotonic() - started

    def settle(self, still: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until the screen has not changed for ``still`` seconds (a preview drawing in, a late count)."""
        started = last_change = time.monotonic()
        before = self.text(styled=True)
        while time.monotonic() - last_change < still and time.monotonic() - started < timeout:
            time.sleep(0.02)
            now = self.text(styled=True)
            if now != before:
                before, last_change = now, time.monotonic()

    def press(self, key: str, timeout: float = 5.0) -> float:
        """Seconds from sending ``key`` to the first change of the screen."""
        self.settle()
        before = self.text(styled=True)
        started = time.monotonic()
        self.send(key)
        while self.text(styled=True) == before:
            if time.monotonic() - started > timeout:
                raise SystemExit(f"{key}: nothing changed on the screen in {timeout:.0f} s")
            time.sleep(0.002)
        return time.monotonic() - started

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def _median_ms(pane: Pane, keys: list[str], presses: int) -> float:
    return statistics.median(pane.press(keys[i % len(keys)]) for i in range(presses)) * 1000


def bare(count: int, presses: int, work: Path) -> float:
    script = work / "bare_list.py"
    script.write_text(BARE_APP)
    pane = Pane(f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {count}")
    try:
        pane.wait_for("demo_000.png")
        return _median_ms(pane, ["Down"], presses)
    finally:
        pane.close()


def wizard(root: Path, presses: int) -> tuple[dict[str, float], float]:
    """The key figures (ms) and the Images scan's time (s) from ^g 1 to its last line."""
    pane = Pane(f"cd {shlex.quote(str(root))} && {shlex.quote(LORATUI)}")
    figures: dict[str, float] = {}
    try:
        pane.wait_for("Step 4 of 6")  # a tagged project opens on Params
        pane.send("C-g")
        pane.wait_for("Go to")
        pane.send("1")
        scan = pane.wait_for("Scan done")
        figures["images down"] = _median_ms(pane, ["Down"], presses)
        figures["images space"] = _median_ms(pane, ["Space"], presses - presses % 2)  # ends as it began
        figures["images filter letter"] = _median_ms(pane, ["d", "BSpace"], presses - presses % 2)
        pane.send("C-g")
        pane.wait_for("Go to")
        pane.send("2")
        pane.wait_for("Step 2 of 6")
        figures["crop down"] = _median_ms(pane, ["Down"], presses)
        pane.send("C-g")
        pane.wait_for("Go to")
        pane.send("3")
        pane.wait_for("tags  ")
        figures["tags down"] = _median_ms(pane, ["Down"], presses)
        figures["tags space"] = _median_ms(pane, ["Space"], presses - presses % 2)
        return figures, scan
    finally:
        pane.close()


def warm_scan(root: Path) -> float:
    pane = Pane(f"cd {shlex.quote(str(root))} && {shlex.quote(LORATUI)}")
    try:
        pane.wait_for("Step 4 of 6")
        pane.send("C-g")
        pane.wait_for("Go to")
        pane.send("1")
        return pane.wait_for("Scan done")
    finally:
        pane.close()


def _project(pictures: Path, count: int, work: Path) -> Path:
    """A prepared, tagged project on ``count`` pictures (links to the drawn ones)."""
    from loratui.cli import main
    from loratui.demo.images import build_demo_images
    from loratui.demo.tagger_model import build_tiny_tagger
    from loratui.project import create_project

    if len(list(pictures.glob("demo_*"))) < count:
        print(f"drawing {count} pictures into {pictures} (once)...", flush=True)
        build_demo_images(pictures, count=count)
    source = work / "pictures"
    source.mkdir()
    for path in sorted(pictures.glob("demo_*"))[:count]:
        (source / path.name).symlink_to(path.absolute())
    project, _ = create_project(work / "project", source, "akari", trigger="akari")
    config = project.load()
    config.dataset.resolution = 256  # prepare stays quick; the lists are what is measured
    config.tagging.model = str(build_tiny_tagger(work / "tagger"))
    project.save(config)
    print("preparing and tagging them (the Crop and Tags lists need it)...", flush=True)
    for command in (["prepare", str(project.root)], ["tag", str(project.root)]):
        if main(command) != 0:
            raise SystemExit(f"loratui {' '.join(command)} failed")
    return project.root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, default=Path(tempfile.gettempdir()) / "loratui-bench-pictures")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--presses", type=int, default=15)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("needs tmux: apt-get install -y tmux")
    with tempfile.TemporaryDirectory() as tmp:
        root = _project(args.pictures, args.count, Path(tmp))
        reference = bare(args.count, args.presses, Path(tmp))
        figures, cold = wizard(root, args.presses)
        warm = warm_scan(root)
    print(f"\n{args.count} pictures, tmux 80x24, median of {args.presses} presses, key to first change on screen")
    print(f"{'key':24} {'ms':>7} {'x bare list':>12}")
    print(f"{'bare OptionList down':24} {reference:7.1f} {1.0:12.2f}")
    for name, ms in figures.items():
        print(f"{name:24} {ms:7.1f} {ms / reference:12.2f}")
    print(f"\nImages scan, ^g 1 to 'Scan done': cold {cold:.2f} s, warm (cache under .loratui/) {warm:.2f} s: "
          f"{cold / warm:.1f}x faster")


if __name__ == "__main__":
    main()
