"""What the wizard imports loads no heavy library: each module checked in a fresh interpreter (harlequin's way)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "onnxruntime")
# The job and event contract, settings, the project, the estimator, the tag table and the scan: the wizard drives
# the engine through these, in its own process, and must start in under a second.
WIZARD_IMPORTS = (
    "loratui.jobs",
    "loratui.jobs.kinds",
    "loratui.jobs.paths",
    "loratui.jobs.events",
    "loratui.jobs.event_log",
    "loratui.jobs.record",
    "loratui.jobs.locks",
    "loratui.jobs.runner",
    "loratui.jobs.detached",
    "loratui.jobs.status",
    "loratui.jobs.stop",
    "loratui.jobs.command",
    "loratui.config",
    "loratui.config_io",
    "loratui.project",
    "loratui.recent",
    "loratui.presets",
    "loratui.training.estimate",
    "loratui.training.preflight",
    "loratui.training.run_position",
    "loratui.dataset.tag_table",
    "loratui.dataset.tag_edits",
    "loratui.dataset.image_scan",
    "loratui.commands.event_lines",
)


def heavy_modules_after_import(module: str) -> list[str]:
    probe = f"import sys\nimport {module}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("module", WIZARD_IMPORTS)
def test_importing_loads_no_heavy_library(module: str) -> None:
    assert heavy_modules_after_import(module) == []


def test_the_probe_sees_a_heavy_import() -> None:
    """The check itself works: a module that does import torch is caught."""
    assert "torch" in heavy_modules_after_import("loratui.training.optim")
