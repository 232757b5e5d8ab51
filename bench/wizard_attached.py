"""What the wizard costs a training run it follows, and how it answers while one runs (issue 12), each against a
reference measured in the same run on the same machine.

usage: .venv/bin/python bench/wizard_attached.py [--steps 200] [--rounds 2] [--presses 12] [--lines 100000]

On the demo project (`loratui demo DIR --no-open`, then `loratui prepare` and `loratui tag`; 24 pictures at
128 px, batch 2, tiny SD1.5 on the CPU; epochs raised so a run lasts, per-epoch checkpoints off):

1. speed: `loratui train DIR --from-scratch --max-steps N` as a subprocess, alone (the reference) and with the
   wizard open on the same project in another process (Pilot, headless, 80x24, on the Train screen following
   the job, pressing nothing), and beside a stand-in process that only burns the share of a core the wizard was
   measured to use (the control: what any process that size costs a run that fills the cores), rounds taking
   turns (A B C, C B A ...). Steps/s from the job's `step` events (their `elapsed_s`) after the first
   `--warmup` steps; the medians over rounds are compared. Goal: >= 0.98.
2. keys: in a Pilot session on the Train screen, keys that redraw something (^t warnings-only and back, up to
   pause the log, end to follow it, ? to open help and esc to close it), 0.1 s apart, first with no training
   (the reference), then while a real `loratui train` runs. Two times per press: from sending the key to the
   first frame that shows its effect ("paint": the app's frames are timed as it hands them to the driver, each
   checked for the key's effect), and `await pilot.press(key)` + `await pilot.pause()` ("pilot"), which holds
   Pilot's own waits for the process to go idle (3 x at least one 20 ms slice; a bare Textual app timed the same
   way in the same run shows that floor). A press whose effect never shows is counted, not timed.
   Goal: under 100 ms (median and p95 reported).
3. memory: the wizard re-attaching to a running training job whose events file holds ``--lines`` step events
   (written through the job contract; no training), against the same app on a 10-line file: peak RSS
   (VmHWM) once the Train screen shows the loss history, and the time from the app's start to that.
   Goal: < 200 MB.

Every wizard runs in a child process of its own (this script with --child), so each RSS is one app's own; a
headless app skips encoding its frames for a terminal, so the children do it for each frame (and drop the bytes).
A measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

LORATUI = str(Path(sys.executable).with_name("loratui"))
SPEED_GOAL, KEY_GOAL_MS, RSS_GOAL_MB = 0.98, 100.0, 200.0
KEY_GAP_S = 0.1  # between presses: a fast typist, and room for the screen's own polls


# --- the children: one wizard each, driven with Pilot -------------------------------------------------------------


def _rss_mb() -> tuple[float, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory of this process, in MB. Not ru_maxrss: on Linux a child
    inherits its parent's peak across fork and exec, so it would report the bench's own (torch-loaded) size."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Paints:
    """Every frame the app hands its driver, timed; a headless app is made to encode each one for a terminal too
    (what a real one sends, less the write), so its CPU and its key times match a terminal's.

    ``expect(worked)`` arms a probe: the first frame of the top screen painted once ``worked()`` holds is the one
    that shows the key's effect; :attr:`shown` is then its time (perf_counter)."""

    def __init__(self, app) -> None:
        from textual._compositor import CompositorUpdate

        self.app, self.frames = app, 0
        self._worked = None
        self.shown: float | None = None
        original = app._display

        def display(screen, renderable) -> None:
            original(screen, renderable)
            if renderable is None or app._batch_count:
                return
            if app.is_headless and isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
            self.frames += 1
            if self._worked is not None and screen is app.screen and self._worked():
                self.shown, self._worked = time.perf_counter(), None

        app._display = display  # the screens call app._display(screen, update) for every frame

    def expect(self, worked) -> None:
        self._worked, self.shown = worked, None


async def _until(pilot, condition, seconds: float = 120.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the screen")
        await pilot.pause(step)


async def _open_train(pilot, app):
    from loratui.tui.screens.train import TrainScreen

    await pilot.pause()
    if not isinstance(app.screen, TrainScreen):
        await pilot.press("ctrl+g", "5")
    await _until(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.update is not None)
    return app.screen


async def child_follow(p: dict) -> dict:
    """Open the Train screen, say ready, follow whatever job runs until the stop file names the job to end on."""
    from textual.widgets import Sparkline

    from loratui.tui.app import WizardApp

    app = WizardApp(Path(p["root"]))
    paints = Paints(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        Path(p["ready"]).touch()
        frames = paints.frames
        cpu, began = _cpu_s(), time.perf_counter()
        stop = Path(p["stop"])
        while not stop.exists():
            await asyncio.sleep(0.2)  # the app runs its own timers meanwhile: nothing is forced here
        cpu, wall = _cpu_s() - cpu, time.perf_counter() - began
        job_id = stop.read_text().strip()
        await _until(pilot, lambda: screen.update.status.job_id == job_id and not screen.update.status.alive, 20)
        status = screen.update.status
        return {"cpu_s": cpu, "wall_s": wall, "state": status.state, "step": status.step,
                "points": len(screen.query_one(Sparkline).data), "frames": paints.frames - frames}


def _key_checks(app, screen) -> list[tuple[str, str, object]]:
    """(label, key, did it work) in the order pressed; a cycle leaves the screen as it found it."""
    from loratui.tui.screens.help import HelpScreen

    def title() -> str:
        return str(screen.query_one("#log-box").border_title)

    return [
        ("ctrl+t (warnings only)", "ctrl+t", lambda: "warnings only" in title()),
        ("ctrl+t (all lines)", "ctrl+t", lambda: "all lines" in title()),
        ("up (log paused)", "up", lambda: "paused" in title()),
        ("end (log follows)", "end", lambda: "following" in title()),
        ("? (help opens)", "question_mark", lambda: isinstance(app.screen, HelpScreen)),
        ("escape (help closes)", "escape", lambda: app.screen is screen),
    ]


async def _time_keys(pilot, paints: Paints, checks, presses: int) -> dict:
    """Per key: press+pause seconds (Pilot's own measure, with its idle waits) and key-to-paint seconds."""
    pilot_s: dict[str, list[float]] = {label: [] for label, _, _ in checks}
    paint_s: dict[str, list[float]] = {label: [] for label, _, _ in checks}
    missed: dict[str, int] = {label: 0 for label, _, _ in checks}
    cpu = _cpu_s()
    for _ in range(presses):
        for label, key, worked in checks:
            await asyncio.sleep(KEY_GAP_S)
            paints.expect(worked)
            began = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            pilot_s[label].append(time.perf_counter() - began)
            if paints.shown is None:
                await pilot.pause(0.5)  # not painted yet: give it a moment before calling it missed
            if paints.shown is None or not worked():
                missed[label] += 1
                paints.expect(None)
            else:
                paint_s[label].append(paints.shown - began)
    return {"pilot": pilot_s, "paint": paint_s, "missed": missed, "cpu_s": _cpu_s() - cpu}


async def child_keys(p: dict) -> dict:
    from loratui.tui.app import WizardApp
    from loratui.tui.widgets.log_view import TrainLog

    app = WizardApp(Path(p["root"]))
    paints = Paints(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        if p["running"]:  # keys are timed while the run trains, not while it loads its model
            await _until(pilot, lambda: screen.update.status.alive and (screen.update.status.step or 0) >= 10, 120)
        await pilot.pause(0.5)
        screen.query_one(TrainLog).focus()
        await pilot.pause()
        result = await _time_keys(pilot, paints, _key_checks(app, screen), p["presses"])
        status = screen.update.status
        return {**result, "alive": status.alive, "step": status.step}


async def child_bare(p: dict) -> dict:
    """Pilot's own floor: a bare Textual app whose ^t rewrites one line, timed the same way."""
    from textual.app import App
    from textual.widgets import Log, Static

    class Bare(App):
        BINDINGS = [("ctrl+t", "toggle", "toggle")]

        def compose(self):
            yield Static("all lines", id="line")
            yield Log()

        def action_toggle(self) -> None:
            line = self.query_one("#line", Static)
            line.update("warnings only" if str(line.render()) == "all lines" else "all lines")

    app = Bare()
    paints = Paints(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)

        def says(text: str):
            return lambda: str(app.query_one("#line", Static).render()) == text

        checks = [("bare ^t", "ctrl+t", says("warnings only")), ("bare ^t back", "ctrl+t", says("all lines"))]
        return await _time_keys(pilot, paints, checks, p["presses"] * 3)


async def child_memory(p: dict) -> dict:
    began = time.perf_counter()
    from textual.widgets import Sparkline

    from loratui.tui.app import WizardApp

    app = WizardApp(Path(p["root"]))
    Paints(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        reads: list = []  # each read the screen applied (kept alive, so no two share an id): the feed's time on it

        def shown_yet() -> bool:
            if screen.update is not None and all(screen.update is not seen for seen in reads):
                reads.append(screen.update)
            return screen.update.status.step == p["lines"] and len(screen.query_one(Sparkline).data) > 0

        await _until(pilot, shown_yet, 120, 0.01)
        shown = time.perf_counter() - began
        read_s = max(update.read_s for update in reads)  # the first read, which takes the whole file
        await pilot.pause(2.0)  # a few more polls of the followed job, at rest
        peak, current = _rss_mb()
        status = screen.update.status
        return {"shown_s": shown, "read_s": read_s, "peak_mb": peak, "rss_mb": current, "state": status.state,
                "points": len(screen.query_one(Sparkline).data), "log_lines": len(screen.query_one("#train-log").every)}


CHILDREN = {"follow": child_follow, "keys": child_keys, "bare": child_bare, "memory": child_memory}


def run_child() -> None:
    kind, params = sys.argv[2], json.loads(sys.argv[3])
    result = asyncio.run(CHILDREN[kind](params))
    Path(params["out"]).write_text(json.dumps(result))


# --- the parent -----------------------------------------------------------------------------------------------


def spawn_child(kind: str, params: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(params)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def finish_child(proc: subprocess.Popen, params: dict, log: Path, timeout: float = 300.0) -> dict:
    if proc.wait(timeout=timeout) != 0 or not Path(params["out"]).is_file():
        raise SystemExit(f"a wizard child failed ({proc.returncode}); its output:\n{log.read_text()[-3000:]}")
    return json.loads(Path(params["out"]).read_text())


def train_command(root: Path, steps: int) -> list[str]:
    return [LORATUI, "train", str(root), "--from-scratch", "--max-steps", str(steps)]


def last_training_job(root: Path) -> tuple[str, list[dict]]:
    from loratui.jobs.event_log import read_raw
    from loratui.jobs.record import read_record
    from loratui.project import Project

    record = read_record(Project(root), "training")
    assert record is not None
    return record.job_id, read_raw(record.events_path)


def steps_per_s(events: list[dict], warmup: int) -> float:
    steps = [e for e in events if e.get("type") == "step" and e.get("elapsed_s") is not None]
    kept = [e for e in steps if e["step"] >= warmup]
    first, last = kept[0], kept[-1]
    return (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"])


def make_project(root: Path, log: Path) -> None:
    """The demo project, prepared and tagged, with epochs enough for the longest run and no per-epoch files."""
    for command in (["demo", str(root), "--no-open"], ["prepare", str(root)], ["tag", str(root)]):
        with log.open("ab") as out:
            if subprocess.run([LORATUI, *command], stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"loratui {' '.join(command)} failed; see {log}:\n{log.read_text()[-2000:]}")
    from loratui.project import Project

    project = Project(root)
    config = project.load()
    config.training.epochs = 200  # 24 steps an epoch: far more than any run here takes (--max-steps ends them)
    config.training.save_every_n_epochs = 0
    project.save(config)


def run_training(root: Path, steps: int, log: Path) -> tuple[str, list[dict]]:
    with log.open("ab") as out:
        code = subprocess.run(train_command(root, steps), stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"loratui train failed ({code}); see {log}:\n{log.read_text()[-2000:]}")
    return last_training_job(root)


STAND_IN = """
import sys, time
busy, period = float(sys.argv[1]), 0.03
while True:
    began = time.perf_counter()
    while time.perf_counter() - began < busy * period:
        pass
    time.sleep(period * (1 - busy))
"""


def speed(root: Path, work: Path, args) -> tuple[list[tuple[int, str, float, str]], dict[str, float]]:
    """Rounds of three runs: alone, followed by the wizard, and next to a stand-in process that only burns the
    share of a core the wizard was measured to use (a busy wait in 30 ms periods): on a machine whose cores the
    training fills, that sets apart what any process of that size costs from what the wizard itself does."""
    rows = []
    rates: dict[str, list[float]] = {"alone": [], "attached": [], "stand-in": []}
    shares: list[float] = []
    log = work / "speed.log"
    for round_index in range(1, args.rounds + 1):
        order = ("alone", "attached", "stand-in") if round_index % 2 else ("stand-in", "attached", "alone")
        for mode in order:
            note = ""
            if mode == "alone":
                _, events = run_training(root, args.steps, log)
            elif mode == "stand-in":
                share = statistics.median(shares) if shares else 0.03
                burner = subprocess.Popen([sys.executable, "-c", STAND_IN, str(share)])
                try:
                    _, events = run_training(root, args.steps, log)
                finally:
                    burner.kill()
                    burner.wait()
                note = f"a process busy {100 * share:.1f}% of a core beside it"
            else:
                tag = f"follow{round_index}"
                params = {"root": str(root), "ready": str(work / f"{tag}.ready"), "stop": str(work / f"{tag}.stop"),
                          "out": str(work / f"{tag}.json")}
                child = spawn_child("follow", params, log)
                deadline = time.monotonic() + 120
                while not Path(params["ready"]).exists():
                    if child.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the wizard did not open; see {log}:\n{log.read_text()[-3000:]}")
                    time.sleep(0.05)
                job_id, events = run_training(root, args.steps, log)
                Path(params["stop"]).write_text(job_id)
                seen = finish_child(child, params, log)
                shares.append(seen["cpu_s"] / seen["wall_s"])
                note = (f"wizard {seen['cpu_s']:.1f} CPU s in {seen['wall_s']:.0f} s "
                        f"({100 * seen['cpu_s'] / seen['wall_s']:.1f}% of a core); saw {seen['state'].upper()} at "
                        f"step {seen['step']}, {seen['points']} loss points, {seen['frames']} frames")
            rate = steps_per_s(events, args.warmup)
            rates[mode].append(rate)
            rows.append((round_index, mode, rate, note))
            print(f"  round {round_index} {mode:<9} {rate:6.3f} steps/s  {note}", flush=True)
    return rows, {mode: statistics.median(values) for mode, values in rates.items()}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def keys(root: Path, work: Path, args) -> dict[str, dict]:
    from loratui.jobs.record import read_record
    from loratui.project import Project

    log = work / "keys.log"
    if read_record(Project(root), "training") is None:  # with no run yet the screen is its checklist: no log keys
        run_training(root, 30, log)
    params = {"presses": args.presses, "out": str(work / "keys-bare.json")}
    results = {"bare": finish_child(spawn_child("bare", params, log), params, log)}
    for mode in ("idle", "training"):
        params = {"root": str(root), "running": mode == "training", "presses": args.presses,
                  "out": str(work / f"keys-{mode}.json")}
        trainer = None
        if mode == "training":
            trainer = subprocess.Popen(train_command(root, 100_000), stdout=log.open("ab"), stderr=subprocess.STDOUT)
        try:
            results[mode] = finish_child(spawn_child("keys", params, log), params, log)
        finally:
            if trainer is not None:
                trainer.terminate()  # SIGTERM: it stops after the current step, as `loratui stop` does
                trainer.wait(timeout=120)
        print(f"  keys, {mode}: done ({results[mode]['cpu_s']:.1f} CPU s in the wizard; training alive at the end: "
              f"{results[mode]['alive']}, step {results[mode]['step']})", flush=True)
    return results


def hold_fake_job(root: Path, lines: int, ready: threading.Event, release: threading.Event) -> None:
    """A running training job with ``lines`` step events, written through the job contract; held until release."""
    from loratui.jobs import events as ev
    from loratui.jobs.runner import job
    from loratui.project import Project

    total = lines * 2
    with job(Project(root), "train", ["train", str(root)]) as handle:
        handle.emit(ev.Plan(total_steps=total, steps_per_epoch=24, epochs=total // 24 + 1, family="sd15",
                            mixed_precision="no", device="cpu"))
        for step in range(1, lines + 1):
            handle.emit(ev.Step(step=step, total_steps=total, epoch=step // 24 + 1, epochs=total // 24 + 1,
                                loss=0.1 + 0.05 * ((step * 7919) % 101) / 101, lr=1e-3, lr_text_encoder=1e-4,
                                images_per_s=14.0, eta_s=(total - step) / 7.0, elapsed_s=step / 7.0))
        ready.set()
        release.wait()


def memory(root: Path, work: Path, args) -> tuple[dict[int, list[dict]], dict[int, tuple[float, float]]]:
    """Two copies of the project, one job each (10 lines, --lines lines), the wizard opened on each in turn."""
    log = work / "memory.log"
    projects, files, holders = {}, {}, []
    release = threading.Event()
    for lines in (10, args.lines):
        copy = work / f"memory-{lines}"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("old-*", "events", "jobs"), symlinks=True)
        ready = threading.Event()
        began = time.perf_counter()
        thread = threading.Thread(target=hold_fake_job, args=(copy, lines, ready, release), daemon=True)
        thread.start()
        ready.wait()
        _, events = last_training_job(copy)
        record_events = next((copy / "logs" / "events").glob("train-*.jsonl"))
        files[lines] = (record_events.stat().st_size / 1e6, time.perf_counter() - began)
        assert sum(e.get("type") == "step" for e in events) == lines
        projects[lines] = copy
        holders.append(thread)
    results: dict[int, list[dict]] = {lines: [] for lines in projects}
    try:
        for round_index in range(args.rounds):
            for lines in (10, args.lines) if round_index % 2 == 0 else (args.lines, 10):
                params = {"root": str(projects[lines]), "lines": lines,
                          "out": str(work / f"memory-{lines}-{round_index}.json")}
                results[lines].append(finish_child(spawn_child("memory", params, log), params, log))
    finally:
        release.set()
        for thread in holders:
            thread.join(timeout=30)
    return results, files


def _ms(values: list[float]) -> tuple[float, float]:
    ms = [v * 1e3 for v in values]
    return (statistics.median(ms), _percentile(ms, 0.95)) if ms else (float("nan"), float("nan"))


def print_keys(results: dict[str, dict], presses: int) -> None:
    idle, busy, bare = results["idle"], results["training"], results["bare"]
    print(f"\n2. Keys on the Train screen, {presses} presses a key, ms: key to the first frame that shows its effect "
          "(paint), and Pilot's press + pause")
    print(f"{'key':<24} {'idle paint':>10} {'p95':>6} {'train paint':>11} {'p95':>6} {'x idle':>6} "
          f"{'idle pilot':>10} {'train pilot':>11} {'p95':>6}")
    rows = [(label, idle, busy) for label in idle["paint"]] + [("all keys", None, None)]
    pooled: dict[str, dict[str, list[float]]] = {"idle": {"paint": [], "pilot": []},
                                                 "train": {"paint": [], "pilot": []}}
    for label, a, b in rows:
        if a is None:
            a = {"paint": {label: pooled["idle"]["paint"]}, "pilot": {label: pooled["idle"]["pilot"]}}
            b = {"paint": {label: pooled["train"]["paint"]}, "pilot": {label: pooled["train"]["pilot"]}}
            missed = 0
        else:
            for way in ("paint", "pilot"):
                pooled["idle"][way] += a[way][label]
                pooled["train"][way] += b[way][label]
            missed = a["missed"][label] + b["missed"][label]
        idle_paint, busy_paint = _ms(a["paint"][label]), _ms(b["paint"][label])
        idle_pilot, busy_pilot = _ms(a["pilot"][label]), _ms(b["pilot"][label])
        flag = f"  ({missed} presses showed nothing)" if missed else ""
        print(f"{label:<24} {idle_paint[0]:10.1f} {idle_paint[1]:6.1f} {busy_paint[0]:11.1f} {busy_paint[1]:6.1f} "
              f"{busy_paint[0] / idle_paint[0]:6.2f} {idle_pilot[0]:10.1f} {busy_pilot[0]:11.1f} "
              f"{busy_pilot[1]:6.1f}{flag}")
    floor_paint = _ms(bare["paint"]["bare ^t"] + bare["paint"]["bare ^t back"])
    floor_pilot = _ms(bare["pilot"]["bare ^t"] + bare["pilot"]["bare ^t back"])
    print(f"{'Pilot floor: bare app ^t':<24} {floor_paint[0]:10.1f} {floor_paint[1]:6.1f} {'':>11} {'':>6} {'':>6} "
          f"{floor_pilot[0]:10.1f}")
    worst = max(pooled["train"]["paint"], default=float("nan")) * 1e3
    print(f"slowest key to paint while training: {worst:.1f} ms ({'under' if worst < KEY_GOAL_MS else 'over'} "
          f"{KEY_GOAL_MS:.0f} ms); the run was still training at the end: {busy['alive']} (step {busy['step']}); "
          f"wizard CPU during the presses: idle {idle['cpu_s']:.1f} s, training {busy['cpu_s']:.1f} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_child()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="steps per speed run (default 200, ~30 s here)")
    parser.add_argument("--warmup", type=int, default=20, help="first steps left out of steps/s (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="alone + attached pairs, taking turns (default 2)")
    parser.add_argument("--presses", type=int, default=12, help="cycles of the six keys (default 12)")
    parser.add_argument("--lines", type=int, default=100_000, help="step events of the big job (default 100000)")
    parser.add_argument("--parts", default="speed,keys,memory", help="which parts to run (default: all three)")
    parser.add_argument("--keep", type=Path, help="build the project here and keep it (default: a temporary one)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loratui-attached-") as tmp:
        work = Path(tmp)
        os.environ["LORATUI_DATA_DIR"] = str(work / "user-data")  # recent projects etc. stay out of the user's
        root = (args.keep or work / "demo").absolute()
        print(f"{os.cpu_count()} CPU cores; building the demo project in {root} ...", flush=True)
        make_project(root, work / "setup.log")
        parts = set(args.parts.split(","))
        if "speed" in parts:
            print(f"1. speed: {args.rounds} rounds of `{' '.join(train_command(Path('DIR'), args.steps))}`",
                  flush=True)
            speed_rows, medians = speed(root, work, args)
        if "keys" in parts:
            print("2. keys on the Train screen", flush=True)
            key_results = keys(root, work, args)
        if "memory" in parts:
            print(f"3. memory: re-attaching to a running job of {args.lines} steps", flush=True)
            memory_results, files = memory(root, work, args)

    if "speed" in parts:
        print_speed(speed_rows, medians, args)
    if "keys" in parts:
        print_keys(key_results, args.presses)
    if "memory" in parts:
        print_memory(memory_results, files, args)
    print(f"\nwhole benchmark: {time.monotonic() - started:.0f} s wall")


def print_speed(speed_rows, medians: dict[str, float], args) -> None:
    alone, attached, stand_in = medians["alone"], medians["attached"], medians["stand-in"]
    print(f"\n1. Training speed, demo project ({args.steps} steps a run, first {args.warmup} untimed), "
          "medians over rounds")
    print(f"{'run':<48} {'steps/s':>8} {'ratio':>7}")
    print(f"{'reference: loratui train alone':<48} {alone:8.3f} {1.0:7.3f}")
    verdict = "meets" if attached / alone >= SPEED_GOAL else "misses"
    print(f"{'with the wizard following it (Train screen)':<48} {attached:8.3f} {attached / alone:7.3f}  "
          f"({verdict} the goal >= {SPEED_GOAL})")
    print(f"{'beside a stand-in burning the wizard CPU share':<48} {stand_in:8.3f} {stand_in / alone:7.3f}  "
          f"(wizard / stand-in {attached / stand_in:.3f})")
    for round_index, mode, rate, note in speed_rows:
        print(f"    round {round_index} {mode:<9} {rate:7.3f}  {note}")


def print_memory(memory_results, files, args) -> None:
    print(f"\n3. Re-attach to a running job: peak RSS once the loss history shows, {args.rounds} opens each")
    print(f"{'events file':<28} {'peak RSS MB':>11} {'x ref':>6} {'to history s':>13} {'x ref':>6} "
          f"{'longest read s':>15}")
    ref_peak = statistics.median(r["peak_mb"] for r in memory_results[10])
    ref_shown = statistics.median(r["shown_s"] for r in memory_results[10])
    for lines, runs in memory_results.items():
        size, _ = files[lines]
        peak = statistics.median(r["peak_mb"] for r in runs)
        shown = statistics.median(r["shown_s"] for r in runs)
        read = statistics.median(r["read_s"] for r in runs)
        label = f"{lines:,} steps ({size:.1f} MB)" + (" ref" if lines == 10 else "")
        print(f"{label:<28} {peak:11.1f} {peak / ref_peak:6.2f} {shown:13.2f} {shown / ref_shown:6.2f} {read:15.3f}")
    big = memory_results[args.lines][-1]
    big_peak = max(r["peak_mb"] for r in memory_results[args.lines])
    print(f"big job: {big['points']} loss points drawn, {big['log_lines']} log lines kept, state {big['state']}; "
          f"peak {big_peak:.1f} MB ({'under' if big_peak < RSS_GOAL_MB else 'over'} {RSS_GOAL_MB:.0f} MB); "
          f"writing its events took {files[args.lines][1]:.1f} s")


if __name__ == "__main__":
    main()
