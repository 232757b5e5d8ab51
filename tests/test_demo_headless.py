"""`loratui demo DIR --headless`: every stage runs and every promised file is there (the issue's done-when)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loratui.cli import main


@pytest.fixture(scope="module")
def headless(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    import contextlib
    import io
    import os

    root = tmp_path_factory.mktemp("headless") / "demo"
    data = tmp_path_factory.mktemp("user-data")
    previous = os.environ.get("LORATUI_DATA_DIR")
    os.environ["LORATUI_DATA_DIR"] = str(data)  # the measured speed goes to a throwaway user folder
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(["demo", str(root), "--headless"])
    finally:
        if previous is None:
            os.environ.pop("LORATUI_DATA_DIR", None)
        else:
            os.environ["LORATUI_DATA_DIR"] = previous
    return root, code, out.getvalue()


def test_every_stage_runs_in_order(headless: tuple[Path, int, str]) -> None:
    root, code, out = headless
    assert code == 0, out[-3000:]
    from loratui.invocation import program

    me = program()  # each command as this shell would type it (`loratui` once the venv is active)
    commands = ["check", "prepare", "tag", "tags", "tags", "estimate", "train", "grid", "install"]
    positions = [out.index(f"$ {me} {name} ") for name in commands[:3]]
    assert positions == sorted(positions)
    assert f"$ {me} tags {root} --delete 'red hair' 'blue eyes'" in out
    assert f"$ {me} tags {root} --trigger akari" in out
    assert "Done in " in out and "FAILED" not in out
    for name in commands:
        assert f"ok      loratui {name}" in out


def test_captions_have_the_trigger_first_and_lost_the_deleted_tags(headless: tuple[Path, int, str]) -> None:
    root, _, _ = headless
    captions = sorted((root / "dataset" / "2_akari").glob("*.txt"))
    assert len(captions) == 24
    for caption in captions:
        tags = [t.strip() for t in caption.read_text(encoding="utf-8").split(",")]
        assert tags[0] == "akari" and "red hair" not in tags and "blue eyes" not in tags
    settings = (root / "loratui.toml").read_text(encoding="utf-8")
    assert '"red hair"' in settings and '"blue eyes"' in settings  # recorded as deleted tags


def test_two_kohya_checkpoints_with_metadata(headless: tuple[Path, int, str]) -> None:
    from safetensors import safe_open

    root, _, _ = headless
    names = sorted(p.name for p in (root / "output").glob("*.safetensors"))
    assert names == ["demo-000002.safetensors", "demo.safetensors"]
    for name, epoch in (("demo-000002.safetensors", "2"), ("demo.safetensors", "4")):
        with safe_open(str(root / "output" / name), framework="pt") as handle:
            metadata = handle.metadata()
            keys = list(handle.keys())
        assert metadata["ss_epoch"] == epoch and metadata["ss_network_dim"] == "4"
        assert metadata["ss_output_name"] == "demo" and "akari" in metadata["ss_tag_frequency"]
        assert any(k.startswith("lora_unet_") for k in keys) and any(k.startswith("lora_te_") for k in keys)


def test_grid_png_and_json_with_a_suggestion(headless: tuple[Path, int, str]) -> None:
    from PIL import Image

    root, _, out = headless
    grid = json.loads((root / "preview" / "grid.json").read_text(encoding="utf-8"))
    assert len(grid["cells"]) == 2 * 5
    assert {c["weight"] for c in grid["cells"]} == {0.6, 0.7, 0.8, 0.9, 1.0}
    assert all((root / c["file"]).is_file() and c["scores"] is not None for c in grid["cells"])
    assert grid["suggestion"] is not None and grid["settings"]["prompt"] == "akari, night"
    with Image.open(root / grid["png"]) as png:
        assert png.width > 5 * 128 and png.height > 2 * 128
    # the --text view drew the grid: plain characters, as its output here is no terminal
    assert "ep04 (final)" in out and "\x1b[" not in out


def test_the_suggested_cell_is_installed_with_its_a1111_card(headless: tuple[Path, int, str]) -> None:
    root, _, out = headless
    grid = json.loads((root / "preview" / "grid.json").read_text(encoding="utf-8"))
    suggestion = grid["suggestion"]
    lora = root / "webui" / "models" / "Lora" / "demo.safetensors"
    assert lora.read_bytes() == (root / suggestion["checkpoint"]).read_bytes()
    card = json.loads(lora.with_suffix(".json").read_text(encoding="utf-8"))
    assert set(card) == {"description", "sd version", "activation text", "preferred weight", "negative text", "notes"}
    assert card["activation text"] == "akari" and card["sd version"] == "SD1"
    assert card["preferred weight"] == suggestion["weight"]
    assert "webui/models/Lora/demo.safetensors" in out and "preview/grid-" in out  # the closing summary


def test_every_job_wrote_only_declared_events_in_its_own_file(headless: tuple[Path, int, str]) -> None:
    """The schema holds for what the real jobs write: a job writing a type or field not declared in
    loratui/jobs/events.py fails here."""
    from loratui.jobs.event_log import read_raw
    from loratui.jobs.events import check_record

    root, _, _ = headless
    files = sorted((root / "logs" / "events").glob("*.jsonl"))
    assert [f.name.split("-")[0] for f in files] == ["grid", "prepare", "tag", "train"]
    seen: set[str] = set()
    for path in files:
        records = read_raw(path)
        assert len(records) == len(path.read_text(encoding="utf-8").splitlines())  # every line is JSON
        for record in records:
            assert check_record(record) == [], (path.name, record)
            assert record["job"] == path.stem  # one job per file
            seen.add(record["type"])
        assert records[0]["type"] == "start" and records[-1]["type"] == "done", path.name
    assert {"start", "plan", "step", "progress", "checkpoint", "cell", "done"} <= seen
