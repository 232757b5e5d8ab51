"""What an earlier run left in the project: its LoRA files in output/ and its resumable state. A new run never
overwrites them: it refuses, resumes (``--resume``) or first moves them aside (``--from-scratch``). No torch here."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from loratui.errors import LoratuiError
from loratui.project import Project
from loratui.training.run_position import STATE_FILE, state_folder

ARCHIVE_PREFIX = "old-"


@dataclass
class PreviousRun:
    """The files of the run that trained before: LoRA files of this output name, and the state folder if it
    holds a saved position (``finished``: the run reached its last step, so there is nothing to resume)."""

    files: list[Path] = field(default_factory=list)
    state: Path | None = None
    finished: bool = False
    steps: str = ""  # "step 3 of 12", from the state, for the messages
    final: Path | None = None  # NAME.safetensors, the file a finished run ends with

    @property
    def exists(self) -> bool:
        return bool(self.files) or self.state is not None

    @property
    def resumable(self) -> bool:
        return self.state is not None and not self.finished


def run_files(output_dir: Path, output_name: str) -> list[Path]:
    """NAME-000002.safetensors, NAME-step00000123.safetensors and NAME.safetensors in ``output_dir`` (sorted)."""
    pattern = re.compile(rf"^{re.escape(output_name)}(-\d{{6}}|-step\d{{8}})?\.safetensors$")
    if not output_dir.is_dir():
        return []
    return sorted(p for p in output_dir.iterdir() if pattern.match(p.name) and p.is_file())


def find_previous_run(project: Project, output_name: str) -> PreviousRun:
    run = PreviousRun(files=run_files(project.output_dir, output_name))
    run.final = next((p for p in run.files if p.name == f"{output_name}.safetensors"), None)
    folder = state_folder(project.state_dir)
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        run.finished = run.final is not None
        return run
    run.state = folder
    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
        step, total = int(data["step"]), int(data["total_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return run  # a damaged state: --resume names the damage; a plain train still must not overwrite it
    run.steps = f"step {step} of {total}"
    final = run.final
    # A state saved at an epoch's end, then the run went on to write its final file: nothing left to resume
    # (runs of loratui 0.1 did not mark their state finished; the final file being newer tells the same).
    run.finished = bool(data.get("finished")) or step >= total or (
        final is not None and final.stat().st_mtime >= state_file.stat().st_mtime)
    return run


def refuse_to_overwrite(run: PreviousRun, project: Project, where: str) -> None:
    """One line naming the earlier run and both ways on; ``where`` is the project folder as the user typed it."""
    if not run.exists:
        return
    shown = _shown_files(run.files, project)
    if run.resumable:
        what = f"a stopped run that can go on ({run.steps}{'; ' + shown if shown else ''})"
        ways = (f"continue it with `loratui train {where} --resume`, or start over with "
                f"`loratui train {where} --from-scratch`")
    else:
        what = f"the files of an earlier run ({shown or 'its saved state'})"
        ways = f"start over with `loratui train {where} --from-scratch`"
    raise LoratuiError(f"{project.output_dir}: holds {what}, which a new run would overwrite: {ways} (which "
                       f"moves them to output/{ARCHIVE_PREFIX}<time>/, deleting nothing)")


def _shown_files(files: list[Path], project: Project) -> str:
    if not files:
        return ""
    names = [p.name for p in files]
    return ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:2])} and {len(names) - 2} more"


def archive_previous_run(project: Project, output_name: str) -> Path | None:
    """Move the earlier run's LoRA files and state into output/old-<time>/ (renames on the same disk, nothing
    copied or deleted) and return that folder, or None when there was nothing to move."""
    run = find_previous_run(project, output_name)
    if not run.exists:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = project.output_dir / f"{ARCHIVE_PREFIX}{stamp}"
    suffix = 1
    while target.exists():  # two fresh starts in one second
        suffix += 1
        target = project.output_dir / f"{ARCHIVE_PREFIX}{stamp}-{suffix}"
    target.mkdir(parents=True)
    for path in run.files:
        os.replace(path, target / path.name)
    if run.state is not None:
        os.replace(run.state, target / "state")
    return target


def mark_finished(state_dir: Path) -> None:
    """Record in the saved state that its run reached the end, so `--resume` says so instead of retraining."""
    from loratui.fsutil import atomic_write_text

    state_file = state_folder(state_dir) / STATE_FILE
    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no state (save_state off) or a damaged one: the final file's time tells the same
    data["finished"] = True
    atomic_write_text(state_file, json.dumps(data, indent=2) + "\n")
