"""The step estimator: kohya's bucket-batch arithmetic, checkpoints, range advice, speed history and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from loratui.config import Concept, Config
from loratui.errors import LoratuiError
from loratui.project import Project
from loratui.training.buckets import BucketAssigner, BucketSettings
from loratui.training.estimate import (
    checkpoint_epochs,
    checkpoint_file,
    count_steps,
    estimate,
    fitting_epochs,
    range_warning,
)
from loratui.training.speed_history import (
    detect_gpu_name,
    history_path,
    load_history,
    lookup_speed,
    record_speed,
)

PREDEFINED_512 = BucketAssigner(BucketSettings(512, True, 256, 1024, 64, no_upscale=False))


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty speed history."""
    folder = tmp_path / "data"
    monkeypatch.setenv("LORATUI_DATA_DIR", str(folder))
    return folder


# --- arithmetic ----------------------------------------------------------------------------------


def test_kohyas_worked_example_51_batches_where_plain_math_says_50():
    # kohya.md §1.6: 20 pictures in 10_x, batch 4, buckets of 7/9/4 -> 70/90/40 -> 18 + 23 + 10 = 51
    sizes = [(512, 512)] * 7 + [(448, 576)] * 9 + [(576, 448)] * 4
    steps = count_steps([(10, sizes)], PREDEFINED_512, batch_size=4)
    assert [(b.width, b.height, b.pictures, b.images, b.batches) for b in steps.buckets] == [
        (448, 576, 9, 90, 23), (512, 512, 7, 70, 18), (576, 448, 4, 40, 10)]
    assert (steps.pictures, steps.images_per_epoch) == (20, 200)
    assert (steps.batches_per_epoch, steps.steps_per_epoch, steps.plain_steps_per_epoch) == (51, 51, 50.0)


def test_two_concepts_with_different_repeats_share_buckets():
    first = [(512, 512)] * 3 + [(700, 900)] * 2  # repeats 5; 700x900 lands in 448x576
    second = [(512, 512)] * 1 + [(1000, 600)] * 3  # repeats 8; 1000x600 lands in 640x384
    steps = count_steps([(5, first), (8, second)], PREDEFINED_512, batch_size=2)
    assert {(b.width, b.height): (b.pictures, b.images, b.batches) for b in steps.buckets} == {
        (448, 576): (2, 10, 5), (512, 512): (4, 23, 12), (640, 384): (3, 24, 12)}
    assert (steps.images_per_epoch, steps.batches_per_epoch, steps.plain_steps_per_epoch) == (57, 29, 28.5)


@pytest.mark.parametrize(("accumulation", "gpus", "steps_per_epoch", "per_process"),
                         [(1, 1, 51, 51), (2, 1, 26, 51), (1, 2, 26, 26), (2, 2, 13, 26), (2, 3, 9, 17)])
def test_accumulation_and_gpus_divide_rounding_up(accumulation, gpus, steps_per_epoch, per_process):
    sizes = [(512, 512)] * 7 + [(448, 576)] * 9 + [(576, 448)] * 4
    steps = count_steps([(10, sizes)], PREDEFINED_512, 4, accumulation, gpus)
    assert steps.batches_per_epoch == 51
    assert (steps.steps_per_epoch, steps.batches_per_process) == (steps_per_epoch, per_process)
    assert steps.plain_steps_per_epoch == 200 / (4 * accumulation * gpus)


def test_checkpoints_skip_the_last_epoch_and_add_the_final_file():
    assert checkpoint_epochs(10, 2) == [2, 4, 6, 8, 10]
    assert checkpoint_epochs(10, 3) == [3, 6, 9, 10]
    assert checkpoint_epochs(10, 0) == [10]
    assert checkpoint_epochs(4, 4) == [4]
    assert checkpoint_epochs(4, 5) == [4]
    assert checkpoint_file("rishi", 2, 10) == "rishi-000002.safetensors"
    assert checkpoint_file("rishi", 10, 10) == "rishi.safetensors"


def test_range_warnings_name_the_epochs_that_land_in_range():
    assert range_warning(820, 82) == "820 steps: below 1500: 19\u201360 epochs land in range"
    assert range_warning(6200, 620) == "6200 steps: above 5000: 3\u20138 epochs land in range"
    assert range_warning(1500, 150) is None and range_warning(5000, 500) is None
    assert range_warning(5200, 2600) == "5200 steps: above 5000: 1 epoch lands in range"
    assert range_warning(6000, 6000) == ("6000 steps: above 5000: one epoch is already 6000 steps: lower the "
                                         "repeats or raise the batch size")
    assert fitting_epochs(82) == (19, 60)
    assert fitting_epochs(1) == (1500, 5000)
    assert fitting_epochs(6000) is None
    for spe in (1, 7, 82, 499, 1500, 2501, 5000):
        first, last = fitting_epochs(spe)
        assert 1500 <= first * spe or first == 1
        assert last * spe <= 5000 < (last + 1) * spe
        assert first == 1 or (first - 1) * spe < 1500


# --- speed history -------------------------------------------------------------------------------


def test_speed_is_recorded_and_found_again(data_dir):
    assert lookup_speed("RTX 4090", "sd15", 512, 2) is None
    record_speed("RTX 4090", "sd15", 512, 2, seconds_per_step=0.8)
    found = lookup_speed("RTX 4090", "sd15", 512, 2)
    assert found.exact and found.seconds_per_batch == 0.8 and found.source.images_per_s == 2.5
    assert found.basis == "from your last RTX 4090 run"
    assert history_path() == data_dir / "speed_history.json"
    stored = json.loads(history_path().read_text())
    assert stored["version"] == 2 and list(stored["speeds"]) == ["RTX 4090|sd15|512|2"]
    record_speed("RTX 4090", "sd15", 512, 2, seconds_per_step=0.6)  # of two runs, the faster middle one
    again = lookup_speed("RTX 4090", "sd15", 512, 2)
    assert again.seconds_per_batch == 0.6 and again.basis == "from the median of your last 2 RTX 4090 runs"
    assert len(load_history()) == 1


def test_one_run_slowed_by_other_work_does_not_set_the_next_estimate():
    """A 30-second job's speed, then one run ten times slower (a grid rendered beside it): still the fast one."""
    record_speed("CPU", "sd15", 128, 2, seconds_per_step=0.3)
    record_speed("CPU", "sd15", 128, 2, seconds_per_step=3.0)
    assert lookup_speed("CPU", "sd15", 128, 2).seconds_per_batch == 0.3
    record_speed("CPU", "sd15", 128, 2, seconds_per_step=0.32)
    record_speed("CPU", "sd15", 128, 2, seconds_per_step=2.9)
    assert lookup_speed("CPU", "sd15", 128, 2).seconds_per_batch == 0.32  # two slow of four: still fast
    for _ in range(4):  # the machine really is slower now: the median follows within a few runs
        record_speed("CPU", "sd15", 128, 2, seconds_per_step=2.0)
    record = load_history()["CPU|sd15|128|2"]
    assert len(record.runs) == 5 and record.seconds_per_batch == 2.0


def test_a_version_1_history_still_counts_as_one_run(data_dir):
    data_dir.mkdir(parents=True)
    history_path().write_text(json.dumps({"version": 1, "speeds": {"RTX 4090|sd15|512|2": {
        "gpu": "RTX 4090", "family": "sd15", "resolution": 512, "batch_size": 2, "seconds_per_batch": 0.8,
        "images_per_s": 2.5, "recorded_at": "2026-01-02T03:04:05"}}}))
    found = lookup_speed("RTX 4090", "sd15", 512, 2)
    assert found.seconds_per_batch == 0.8 and found.source.recorded_at == "2026-01-02T03:04:05"
    record_speed("RTX 4090", "sd15", 512, 2, seconds_per_step=0.7)
    assert [run.seconds_per_batch for run in load_history()["RTX 4090|sd15|512|2"].runs] == [0.8, 0.7]


def test_a_run_s_speed_is_its_median_step_without_the_first():
    from loratui.training.speed_history import typical_step_seconds

    # step 1 pays one-off costs; steps 5-6 ran while something else used the machine
    assert typical_step_seconds([9.0, 0.5, 0.5, 0.6, 4.0, 4.0, 0.5]) == 0.55
    assert typical_step_seconds([2.0]) == 2.0 and typical_step_seconds([]) is None


def test_accumulated_steps_are_stored_per_batch():
    record_speed("A100", "sdxl", 1024, 1, seconds_per_step=2.0, gradient_accumulation_steps=4)
    assert lookup_speed("A100", "sdxl", 1024, 1).seconds_per_batch == 0.5


def test_other_resolutions_and_batches_are_scaled_by_pixels():
    record_speed("RTX 3060", "sd15", 512, 1, seconds_per_step=1.0)
    doubled = lookup_speed("RTX 3060", "sd15", 1024, 1)  # 4x the pixels
    assert not doubled.exact and doubled.seconds_per_batch == pytest.approx(4.0)
    assert doubled.basis == "from your RTX 3060 run at 512 px, scaled"
    batch = lookup_speed("RTX 3060", "sd15", 512, 3)
    assert batch.seconds_per_batch == pytest.approx(3.0) and "batch 1" in batch.basis
    record_speed("RTX 3060", "sd15", 768, 2, seconds_per_step=2.0)
    near = lookup_speed("RTX 3060", "sd15", 704, 2)  # nearer to 768 than to 512
    assert near.source.resolution == 768 and near.seconds_per_batch == pytest.approx(2.0 * (704 / 768) ** 2)
    assert lookup_speed("RTX 3060", "sdxl", 512, 1) is None  # another family is another model
    assert lookup_speed("RTX 4090", "sd15", 512, 1) is None  # another GPU is another speed


def test_a_damaged_history_counts_as_empty_and_is_replaced(data_dir):
    data_dir.mkdir(parents=True)
    history_path().write_text("{not json")
    assert lookup_speed("RTX 4090", "sd15", 512, 1) is None
    history_path().write_text(json.dumps({"speeds": {"x": {"gpu": "RTX 4090", "family": "sd15"}}}))
    assert load_history() == {}
    record_speed("RTX 4090", "sd15", 512, 1, seconds_per_step=0.5)
    assert lookup_speed("RTX 4090", "sd15", 512, 1).seconds_per_batch == 0.5


def test_gpu_name_from_nvidia_smi_or_cpu(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    monkeypatch.setenv("PATH", str(fake))
    assert detect_gpu_name() == "CPU"
    script = fake / "nvidia-smi"
    script.write_text("#!/bin/sh\n[ \"$1\" = --query-gpu=name ] || exit 9\necho 'NVIDIA H100 80GB HBM3'\n"
                      "echo 'NVIDIA H100 80GB HBM3'\n")
    script.chmod(0o755)
    assert detect_gpu_name() == "NVIDIA H100 80GB HBM3"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert detect_gpu_name() == "CPU"


# --- a project on disk ---------------------------------------------------------------------------


def make_project(root: Path, concepts: dict[str, tuple[int, list[tuple[int, int]]]], **training) -> Project:
    """A project whose dataset/ already holds prepared pictures of the given sizes."""
    config = Config()
    config.project.output_name = "hero"
    config.dataset.crop = "none"
    config.dataset.bucket_no_upscale = False
    for key, value in training.items():
        setattr(config.training, key, value)
    for name, (repeats, sizes) in concepts.items():
        concept = Concept(name=name, source="pics", repeats=repeats, trigger=name)
        config.concepts.append(concept)
        folder = root / "dataset" / f"{repeats}_{name}"
        folder.mkdir(parents=True)
        for index, size in enumerate(sizes):
            Image.new("RGB", size, (90, 120, 150)).save(folder / f"{index:03d}.png")
    project = Project(root)
    project.make_folders()
    project.save(config)
    return project


def test_a_project_is_counted_from_its_prepared_pictures(tmp_path):
    project = make_project(tmp_path / "p", {"hero": (5, [(512, 512)] * 3 + [(700, 900)] * 2),
                                            "sidekick": (8, [(512, 512)] + [(1000, 600)] * 3)},
                           batch_size=2, epochs=10, save_every_n_epochs=4)
    result = estimate(project, project.load(), gpu_name="RTX 4090")
    assert [(c.folder, c.pictures, c.repeats, c.images) for c in result.concepts] == [
        ("dataset/5_hero", 5, 5, 25), ("dataset/8_sidekick", 4, 8, 32)]
    assert (result.steps.batches_per_epoch, result.steps.steps_per_epoch, result.total_steps) == (29, 29, 290)
    assert result.plain_total_steps == 285.0 and result.rounded_up
    assert [(c.epoch, c.file) for c in result.checkpoints] == [
        (4, "hero-000004.safetensors"), (8, "hero-000008.safetensors"), (10, "hero.safetensors")]
    assert not result.in_range and result.fit_epochs == (52, 172)
    assert result.warnings[0] == "290 steps: below 1500: 52\u2013172 epochs land in range"
    assert (result.family, result.family_from, result.gpu) == ("sd15", "default", "RTX 4090")
    assert result.seconds is None and result.time_basis == "unknown until your first training run on the RTX 4090"
    data = result.to_dict()
    assert json.loads(json.dumps(data))["steps"]["buckets"][0] == {
        "width": 448, "height": 576, "pictures": 2, "images": 10, "batches": 5}
    assert data["in_range"] is False and data["range_advice"] == result.warnings[0]


def test_the_time_comes_from_the_speed_history(tmp_path):
    project = make_project(tmp_path / "p", {"hero": (10, [(512, 512)] * 30)}, batch_size=2, epochs=12, gpus=2)
    record_speed("RTX 4090", "sd15", 512, 2, seconds_per_step=0.5)
    config = project.load()
    result = estimate(project, config, gpu_name="RTX 4090")
    # 300 pictures/epoch -> 150 batches, 75 per GPU, 12 epochs: 900 batches of 0.5 s on each GPU
    assert (result.steps.steps_per_epoch, result.total_steps) == (75, 900)
    assert result.seconds == pytest.approx(450.0) and result.time_basis == "from your last RTX 4090 run"
    single = estimate(project, config, gpus=1, gpu_name="RTX 4090")
    assert single.total_steps == 1800 and single.in_range and single.seconds == pytest.approx(900.0)
    assert single.warnings == []


def test_the_family_comes_from_the_flag_then_the_preset(tmp_path):
    project = make_project(tmp_path / "p", {"hero": (1, [(1024, 1024)])})
    config = project.load()
    config.dataset.resolution = 1024
    config.project.preset = "sdxl-character"
    assert estimate(project, config, gpu_name="X").family_from == "preset sdxl-character"
    assert estimate(project, config, gpu_name="X").family == "sdxl"
    assert estimate(project, config, family="sd2-v", gpu_name="X").family_from == "--family"
    config.project.preset = "gone-since"
    assert estimate(project, config, gpu_name="X").family == "sd15"
    with pytest.raises(LoratuiError, match="--family sd3: unknown: use one of sd15, sd2, sd2-v, sdxl"):
        estimate(project, config, family="sd3", gpu_name="X")


def test_square_crops_warn_about_pictures_prepared_with_other_settings(tmp_path):
    project = make_project(tmp_path / "p", {"hero": (2, [(512, 512)] * 2 + [(384, 384)])})
    config = project.load()
    config.dataset.crop = "focal"
    result = estimate(project, config, gpu_name="X")
    assert any(w.startswith("dataset/2_hero: 1 of 3 pictures are not 512x512") for w in result.warnings)


def test_a_project_without_prepared_pictures_is_told_to_prepare(tmp_path):
    project = make_project(tmp_path / "p", {"hero": (2, [])})
    with pytest.raises(LoratuiError, match=r"dataset: no prepared pictures: run `loratui prepare .*` first"):
        estimate(project, project.load(), gpu_name="X")
    project = make_project(tmp_path / "q", {"hero": (2, [(512, 512)]), "villain": (3, [])})
    with pytest.raises(LoratuiError, match=r"3_villain: no prepared pictures"):
        estimate(project, project.load(), gpu_name="X")


def test_a_broken_picture_is_named(tmp_path):
    project = make_project(tmp_path / "p", {"hero": (2, [(512, 512)])})
    (project.dataset_dir / "2_hero" / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(LoratuiError, match=r"bad\.png: not a readable picture"):
        estimate(project, project.load(), gpu_name="X")


# --- the command ---------------------------------------------------------------------------------


def loratui(*args: str | Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LORATUI_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "loratui", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_estimate_on_the_demo_project(tmp_path, data_dir):
    demo = tmp_path / "demo"
    assert loratui("demo", demo, data_dir=data_dir).returncode == 0
    before = loratui("estimate", demo, data_dir=data_dir)
    assert before.returncode == 2 and "Traceback" not in before.stderr
    assert before.stderr.strip().splitlines() == [
        f"loratui: {demo / 'dataset'}: no prepared pictures: run `loratui prepare {demo}` first"]
    assert loratui("prepare", demo, data_dir=data_dir).returncode == 0

    # The demo: 24 pictures x 2 repeats, batch 2, 4 epochs, a checkpoint every 2 epochs, 128 px squares.
    record_speed("Demo GPU", "sd15", 128, 2, seconds_per_step=0.25, path=data_dir / "speed_history.json")
    shown = loratui("estimate", demo, "--gpu-name", "Demo GPU", data_dir=data_dir)
    assert shown.returncode == 0, shown.stderr
    rows = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    for row in ("pictures 24", "x repeats 2", "= pictures/epoch 48", "/ batch 2 = steps 24", "x epochs 4",
                "= total steps 96", "checkpoints 2 after epoch 2, 4",
                "time ~24s from your last Demo GPU run", "128 x 128 24 48 24"):
        assert row in rows, shown.stdout
    assert "! 96: below 1 500 aim: 1 500 to 5 000; 63\u2013208 epochs land in range" in rows

    # Whole pictures in buckets: the JSON agrees with the prepared files' own sizes (bucket-ready, no_upscale).
    toml = demo / "loratui.toml"
    toml.write_text(toml.read_text().replace('crop = "focal"', 'crop = "none"'))
    assert loratui("prepare", demo, data_dir=data_dir).returncode == 0
    as_json = loratui("estimate", demo, "--json", "--family", "sd15", "--gpus", "2", data_dir=data_dir)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    sizes = Counter(Image.open(p).size for p in (demo / "dataset" / "2_akari").glob("*.png"))
    assert len(sizes) > 1
    assert {(b["width"], b["height"]): b["pictures"] for b in data["steps"]["buckets"]} == dict(sizes)
    batches = sum(-(-2 * count // 2) for count in sizes.values())
    assert data["steps"]["batches_per_epoch"] == batches
    assert data["steps"]["steps_per_epoch"] == -(-batches // 2)
    assert data["total_steps"] == 4 * data["steps"]["steps_per_epoch"]
    assert data["family_from"] == "--family" and data["gpu"] == "CPU"
    assert [c["file"] for c in data["checkpoints"]] == ["demo-000002.safetensors", "demo.safetensors"]

    bad = loratui("estimate", demo, "--gpus", "0", data_dir=data_dir)
    assert bad.returncode == 2 and bad.stderr.strip() == "loratui: --gpus 0: use 1 or more"


def test_the_estimate_command_loads_no_heavy_library(tmp_path):
    project = make_project(tmp_path / "p", {"hero": (2, [(512, 512)])})
    probe = (f"import sys\nfrom loratui.cli import main\nassert main(['estimate', {str(project.root)!r}]) == 0\n"
             "print(' '.join(m for m in ('torch', 'diffusers', 'transformers', 'peft', 'accelerate', "
             "'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ""


def test_on_a_cpu_the_estimate_says_cpu_not_gpu(tmp_path):
    from loratui.commands.estimate_cmd import render

    project = make_project(tmp_path / "p", {"hero": (2, [(512, 512)])})
    lines = render(estimate(project, project.load(), gpu_name="CPU"))
    assert lines[0] == f"Estimate for {project.root}: family sd15 (default), 512 px, on the CPU"
    assert "time unknown until your first training run on the CPU" in [" ".join(line.split()) for line in lines]
    record_speed("CPU", "sd15", 512, 1, seconds_per_step=2.0)
    timed = [" ".join(line.split()) for line in render(estimate(project, project.load(), gpu_name="CPU"))]
    assert any(line.startswith("time ~") and line.endswith("s from your last CPU run") for line in timed), timed
    gpu = render(estimate(project, project.load(), gpu_name="NVIDIA GeForce RTX 4090"))
    assert gpu[0].endswith(", 512 px, GPU NVIDIA GeForce RTX 4090")


def test_the_panel_shows_accumulation_gpus_and_long_checkpoint_lists(tmp_path):
    from loratui.commands.estimate_cmd import render

    project = make_project(tmp_path / "p", {"hero": (10, [(512, 512)] * 7 + [(700, 900)] * 9 + [(900, 700)] * 4)},
                           batch_size=4, gradient_accumulation_steps=2, gpus=2, epochs=40, save_every_n_epochs=2)
    rows = [" ".join(line.split()) for line in render(estimate(project, project.load(), gpu_name="X"))]
    for row in ("/ batch 4 = batches 51", "/ accumulation 2 26", "/ 2 GPUs = steps 13",
                "(rounded up; plain math says 12.5)", "= total steps 520",
                "checkpoints 20 after epoch 2, 4, 6, \u2026, 38, 40", "! 520: below 1 500 aim: 1 500 to 5 000; "
                "116\u2013384 epochs land in range"):
        assert row in rows, rows


def test_cached_pictures_follow_edited_repeats(tmp_path):
    from loratui.training.estimate import read_concepts

    project = make_project(tmp_path / "p", {"hero": (2, [(512, 512)] * 6)}, batch_size=1)
    config = project.load()
    cached = read_concepts(project, config)
    config.concepts[0].repeats = 7  # edited in the wizard, folder not renamed yet
    result = estimate(project, config, gpu_name="X", pictures=cached)
    assert (result.steps.images_per_epoch, result.concepts[0].repeats) == (42, 7)


def test_the_family_comes_from_the_base_model_before_the_preset(tiny_sdxl_dir, tmp_path):
    from loratui.config import Config
    from loratui.training.estimate import resolve_family

    config = Config()
    config.project.preset = "sd15-character"
    config.project.base_model = str(tiny_sdxl_dir)
    assert resolve_family(config, None, tmp_path) == ("sdxl", "base model")
    assert resolve_family(config, "sd2", tmp_path) == ("sd2", "--family")
    config.project.base_model = str(tmp_path / "missing.safetensors")  # unreadable: fall back to the preset
    assert resolve_family(config, None, tmp_path) == ("sd15", "preset sd15-character")
