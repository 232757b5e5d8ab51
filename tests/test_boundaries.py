"""The engine/UI split: the CLI and the wizard never load heavy libraries; the engine never imports textual."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "loratui"
HEAVY = ("torch", "diffusers", "transformers", "peft", "onnxruntime", "accelerate")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_importing_the_cli_and_the_tui_loads_no_heavy_library():
    assert loaded_after("import loratui.cli, loratui.tui") == []


def test_light_commands_load_no_heavy_library(tmp_path):
    code = (
        "import contextlib, io\nfrom loratui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    main(['presets', 'list']); main(['settings']); main(['check', {str(tmp_path)!r}])"
    )
    assert loaded_after(code) == []


def test_tui_modules_never_import_heavy_libraries():
    for path in (PACKAGE / "tui").rglob("*.py"):
        assert not imported_roots(path) & set(HEAVY), path


def test_engine_modules_never_import_textual():
    for path in PACKAGE.rglob("*.py"):
        if "tui" not in path.relative_to(PACKAGE).parts:
            assert "textual" not in imported_roots(path), path


def test_the_tag_table_and_the_picture_scan_load_no_heavy_library():
    # The Tags and Images screens import these directly.
    assert loaded_after("import loratui.dataset.tag_table, loratui.dataset.image_scan") == []


def test_opening_the_wizard_on_a_project_loads_no_heavy_library(tmp_path):
    """The app runs (headless, 80x24) on a project, walks every step and opens help: nothing heavy is imported,
    which `python -X importtime` confirms module by module."""
    from loratui.project import create_project

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    project, _ = create_project(tmp_path / "proj", pictures, "akari")
    code = (
        "import asyncio\nfrom loratui.tui.app import WizardApp\n"
        f"app = WizardApp({str(project.root)!r})\n"
        "async def walk():\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        for key in ['ctrl+n'] * 5 + ['question_mark', 'escape', 'ctrl+g', '1']:\n"
        "            await pilot.press(key)\n"
        "        await pilot.pause()\n"
        "asyncio.run(walk())"
    )
    assert loaded_after(code) == []
    timed = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                           timeout=120)
    assert timed.returncode == 0, timed.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in timed.stderr.splitlines()
                if line.startswith("import time:")}
    assert "textual" in imported and not imported & set(HEAVY)
