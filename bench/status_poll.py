"""The cost of following a job's status on a long events file: incremental reads against re-reading it all.

usage: python bench/status_poll.py [--lines 100000] [--polls 40]

A training job with ``--lines`` step events (a long run: 100,000 steps) is written into a throwaway project, the
job still holding its lock. Then, in one run on one machine:

* reference — what `status` did before loratui/jobs/: every poll reads and folds the whole events file (a fresh
  :class:`~loratui.jobs.status.JobTracker` per poll, no saved fold);
* tracker — the wizard's way: one tracker polled again and again, one new step written between polls;
* status — `job_status` as `loratui status` calls it, a new process each time: the fold the previous call saved
  is read instead of the file.

Each is timed per poll (median). The wizard polls 4 times a second, so a poll must cost well under 250 ms; the
ratios say how much of the reference each one costs. A measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loratui.jobs import events as ev  # noqa: E402
from loratui.jobs.runner import job  # noqa: E402
from loratui.jobs.status import JobTracker, job_status  # noqa: E402
from loratui.project import Project  # noqa: E402


def timed(call, polls: int, between=None) -> float:
    times = []
    for _ in range(polls):
        if between is not None:
            between()
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        root.mkdir()
        (root / "loratui.toml").write_text("")
        project = Project(root)
        ready, release = threading.Event(), threading.Event()
        handles: list = []

        def hold() -> None:
            with job(project, "train", ["train", str(root)]) as handle:
                handle.emit(ev.Plan(total_steps=args.lines * 2, steps_per_epoch=1000, epochs=args.lines // 500))
                for step in range(1, args.lines + 1):
                    handle.emit(ev.Step(step=step, total_steps=args.lines * 2, epoch=step // 1000 + 1,
                                        loss=0.1, lr=1e-4, images_per_s=4.0, eta_s=1000.0))
                handles.append(handle)
                ready.set()
                release.wait()

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        ready.wait()
        handle = handles[0]
        size = handle.events_path.stat().st_size
        step = [args.lines]

        def one_more() -> None:
            step[0] += 1
            handle.emit(ev.Step(step=step[0], total_steps=args.lines * 2, loss=0.1))

        reference = timed(lambda: JobTracker(project, "training").poll(), max(5, args.polls // 4), one_more)
        tracker = JobTracker(project, "training")
        tracker.poll()
        incremental = timed(tracker.poll, args.polls, one_more)
        assert tracker.poll().step == step[0]
        job_status(project)  # the first call reads it all and saves its fold
        cached = timed(lambda: job_status(project), args.polls, one_more)
        release.set()
        thread.join()
    print(f"events file: {args.lines} step lines, {size / 1e6:.1f} MB")
    print(f"{'way':<34} {'ms/poll':>9} {'ratio':>7}")
    print(f"{'reference: re-read the whole file':<34} {reference * 1e3:>9.2f} {1.0:>7.3f}")
    print(f"{'tracker: only the new lines':<34} {incremental * 1e3:>9.3f} {incremental / reference:>7.4f}")
    print(f"{'job_status (saved fold)':<34} {cached * 1e3:>9.3f} {cached / reference:>7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
