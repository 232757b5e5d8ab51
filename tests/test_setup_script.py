"""scripts/setup: the machine decides the CUDA or CPU builds of torch and onnxruntime, pip's output goes to a log,
and a second run with nothing changed installs nothing. Run on a copy with a fake .venv/bin/python that records
what pip was asked, so nothing is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/bin/sh
# Records each call; "import torch" fails (no torch yet); pip "installs" and prints a lot, as pip does.
echo "$*" >> "$(dirname "$0")/../calls"
case "$*" in
  *"import sys, torch"*) exit 1 ;;
  *--dry-run*) echo '{"install": [{"metadata": {"version": "2.13.0"}}]}' ;;
  *install*) i=0; while [ $i -lt 300 ]; do echo "Collecting something $i"; i=$((i+1)); done
             [ -n "$FAIL_PIP" ] && { echo "ERROR: no matching distribution"; exit 1; }
             touch "$(dirname "$0")/loratui"; chmod +x "$(dirname "$0")/loratui" ;;
esac
exit 0
"""


def _checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("scripts/setup", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, repo / name)
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return repo


def _run(repo: Path, tmp_path: Path, *args: str, gpu: bool = False, **env: str) -> subprocess.CompletedProcess:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    smi = fake_bin / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200'\n" if gpu else "#!/bin/sh\nexit 9\n")
    smi.chmod(0o755)
    environ = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(repo / "scripts" / "setup"), *args], capture_output=True, text=True,
                          env=environ, timeout=60)


def _calls(repo: Path) -> list[str]:
    path = repo / ".venv" / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_cpu_machine_gets_onnxruntime_and_torch_from_the_constraints_with_a_short_summary(tmp_path):
    repo = _checkout(tmp_path)
    result = _run(repo, tmp_path, "--test")
    assert result.returncode == 0, result.stderr
    installs = [c for c in _calls(repo) if " install " in c and "--dry-run" not in c]
    assert len(installs) == 2
    torch_call, loratui_call = installs
    assert "-c constraints.txt torch==2.13.0" in torch_call and "download.pytorch.org/whl/cpu" in torch_call
    assert loratui_call.endswith("-c constraints.txt -e .[cpu,test]")
    # One line per step, not pip's 600 lines; the whole output is in the log it names.
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert lines[-1].startswith("loratui is set up, CPU build") and ".venv/setup.log" in lines[-1]
    assert (repo / ".venv" / "setup.log").read_text().count("Collecting something") == 600


def test_a_gpu_machine_gets_onnxruntime_gpu_and_pypis_cuda_torch(tmp_path):
    repo = _checkout(tmp_path)
    result = _run(repo, tmp_path, gpu=True)
    assert result.returncode == 0, result.stderr
    installs = [c for c in _calls(repo) if " install " in c]
    assert installs[0].endswith("install -c constraints.txt torch==2.13.0")
    assert installs[1].endswith("-e .[gpu]")
    assert "GPU build" in result.stdout
    assert 'onnxruntime-gpu>=1.17' in (ROOT / "pyproject.toml").read_text().split("gpu = [", 1)[1].split("]")[0]


def test_plan_says_what_each_machine_would_get_and_installs_nothing(tmp_path):
    repo = _checkout(tmp_path)
    assert _run(repo, tmp_path, "--plan", "--test").stdout.strip() == (
        "cpu machine: would install onnxruntime, torch 2.13.0 CPU build, then loratui[cpu,test] with constraints.txt")
    assert "onnxruntime-gpu, torch 2.13.0 CUDA build" in _run(repo, tmp_path, "--plan", gpu=True).stdout
    assert _calls(repo) == []


def test_a_second_run_with_nothing_changed_installs_nothing_and_a_changed_pin_reinstalls(tmp_path):
    repo = _checkout(tmp_path)
    assert _run(repo, tmp_path, "--test").returncode == 0
    first = len(_calls(repo))
    again = _run(repo, tmp_path, "--test")
    assert again.returncode == 0 and len(_calls(repo)) == first
    assert "nothing changed since the last setup" in again.stdout
    # Other extras, or a changed pin, install again.
    with (repo / "constraints.txt").open("a") as handle:
        handle.write("# a new pin\n")
    assert _run(repo, tmp_path, "--test").returncode == 0
    assert len(_calls(repo)) > first


def test_a_failing_pip_shows_the_end_of_its_output_and_names_the_log(tmp_path):
    repo = _checkout(tmp_path)
    result = _run(repo, tmp_path, FAIL_PIP="1")
    assert result.returncode == 1
    assert "ERROR: no matching distribution" in result.stderr
    assert "the whole pip output is in .venv/setup.log" in result.stderr
    assert not (repo / ".venv" / "setup.stamp").exists()
