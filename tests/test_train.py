"""The training loop and `loratui train` on the tiny SD1.5: files, exact step count, NaN, preflight, stop/resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from job_events import job_events
from test_data import SIZES_A, SIZES_B, make_project

from loratui.cli import main
from loratui.errors import LoratuiError
from loratui.training.estimate import estimate


@pytest.fixture(autouse=True)
def _own_speed_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop records its speed in the user data folder; keep the tests' figures out of the real one."""
    monkeypatch.setenv("LORATUI_DATA_DIR", str(tmp_path / "user-data"))


def tiny_project(tmp_path: Path, base_model: Path, concepts: dict | None = None, **training):
    project, config = make_project(tmp_path, concepts or {"akari": (1, [(128, 128)] * 4)})
    config.project.base_model = str(base_model)
    t = config.training
    t.epochs, t.batch_size, t.save_every_n_epochs = 2, 2, 1
    t.network_dim, t.network_alpha, t.unet_lr, t.text_encoder_lr = 4, 2.0, 1e-3, 1e-4
    t.optimizer, t.lr_scheduler, t.mixed_precision, t.cache_latents = "AdamW", "constant", "no", "memory"
    for key, value in training.items():
        setattr(t, key, value)
    project.save(config)
    return project, project.load()


def step_events(project) -> list[dict]:
    return [e for e in job_events(project) if e["type"] == "step"]


def test_a_short_run_writes_kohya_checkpoints_and_the_estimated_steps(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=3, save_every_n_epochs=1)
    result = run_training(project, config)
    plan = estimate(project, config)
    steps = step_events(project)
    assert [e["step"] for e in steps] == list(range(1, plan.total_steps + 1)) and plan.total_steps == 6
    assert result.steps == plan.total_steps and not result.stopped
    names = sorted(p.name for p in project.output_dir.glob("*.safetensors"))
    assert names == ["project-000001.safetensors", "project-000002.safetensors", "project.safetensors"]
    kinds = [e["type"] for e in job_events(project)]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("checkpoint") == 3
    assert all(math.isfinite(e["loss"]) and e["lr"] == pytest.approx(1e-3) for e in steps)

    from safetensors import safe_open

    with safe_open(str(result.final_file), framework="pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
    assert metadata["ss_steps"] == "6" and metadata["ss_epoch"] == "3" and metadata["ss_network_dim"] == "4"
    unet = [k for k in keys if k.startswith("lora_unet_")]
    te = [k for k in keys if k.startswith("lora_te_")]
    assert unet and te and len(keys) == len(unet) + len(te)

    from loratui.demo.sd_models import tiny_sd15_pipeline

    pipe = tiny_sd15_pipeline(0)
    pipe.load_lora_weights(str(result.final_file), adapter_name="trained")
    loaded = [n for n, _ in pipe.unet.named_parameters() if "lora_A.trained" in n]
    loaded_te = [n for n, _ in pipe.text_encoder.named_parameters() if "lora_A.trained" in n]
    assert len(loaded) == sum(k.endswith(".lora_down.weight") for k in unet)
    assert len(loaded_te) == sum(k.endswith(".lora_down.weight") for k in te)


def test_predicted_steps_equal_executed_with_two_concepts_and_several_buckets(
    tmp_path: Path, tiny_sd15_dir: Path
) -> None:
    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir, {"alice": (2, SIZES_A), "bob": (1, SIZES_B)},
                                   epochs=1, batch_size=3, gradient_accumulation_steps=2, cache_latents="off",
                                   train_text_encoder=False, save_every_n_epochs=0, gradient_checkpointing=True)
    plan = estimate(project, config)
    assert len(plan.steps.buckets) >= 4 and plan.steps.steps_per_epoch != plan.steps.plain_steps_per_epoch
    result = run_training(project, config)
    assert len(step_events(project)) == plan.total_steps == result.steps


def test_nan_loss_stops_at_once_and_keeps_the_earlier_checkpoint(
    tmp_path: Path, tiny_sd15_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from loratui.training import loop
    from loratui.training.health import TrainingFailed

    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=3)
    real_forward = loop._Run._forward
    calls = {"n": 0}

    def poisoned(self, samples):
        calls["n"] += 1
        loss = real_forward(self, samples)
        return loss * torch.tensor(float("nan")) if calls["n"] >= 4 else loss

    monkeypatch.setattr(loop._Run, "_forward", poisoned)
    with pytest.raises(TrainingFailed, match="loss became NaN at step 4: lower the learning rate"):
        loop.run_training(project, config)
    events = job_events(project)
    assert events[-1]["type"] == "error" and "NaN at step 4" in events[-1]["message"]
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3]
    assert sorted(p.name for p in project.output_dir.glob("*.safetensors")) == ["project-000001.safetensors"]


def test_stop_file_then_resume_continues_the_same_run(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    from loratui.jobs import events as ev
    from loratui.jobs.runner import job
    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=3, save_every_n_epochs=2)

    with job(project, "train") as handle:  # the run joins this job; a listener asks it to stop at step 3
        handle.listen(lambda e: isinstance(e, ev.Step) and e.step == 3 and handle.stop_path.touch())
        first = run_training(project, config)
    assert first.stopped and first.steps == 3 and not handle.stop_path.exists()
    events = job_events(project)
    assert events[-1]["type"] == "done" and events[-1]["stopped"] is True
    assert events[-1]["summary"]["stopped_by"] == "a stop request"
    assert not [e for e in events if e["type"] == "warning"]  # a stop asked for is not a warning
    assert (project.output_dir / "project-step00000003.safetensors").is_file()
    steps = step_events(project)

    # A resume with settings that change the optimisation is refused, naming each change, before torch runs.
    import dataclasses

    changed = dataclasses.replace(config, training=dataclasses.replace(
        config.training, unet_lr=2e-3, optimizer="Lion", min_snr_gamma=5.0))
    with pytest.raises(LoratuiError) as refused:
        run_training(project, changed, resume=True)
    message = str(refused.value)
    assert "\n" not in message and "cannot resume: the run was made with other settings" in message
    for change in ("training.unet_lr: 0.001 -> 0.002", 'training.optimizer: "AdamW" -> "Lion"',
                   "training.min_snr_gamma: 0.0 -> 5.0",
                   f"`loratui train {project.root} --from-scratch` (the old run's files are kept)"):
        assert change in message
    # Settings that do not change the run may: TensorBoard on for the rest of it.
    config.training.tensorboard = True
    second = run_training(project, config, resume=True)
    assert second.steps == 6 and second.resumed_from == 3 and not second.stopped
    steps += step_events(project)
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert (project.output_dir / "project-000002.safetensors").is_file()

    # The same settings without the stop reach exactly the same losses: data order, noise and state all resumed.
    other, other_config = tiny_project(tmp_path / "straight", tiny_sd15_dir, epochs=3, save_every_n_epochs=2)
    run_training(other, other_config)
    straight = [e["loss"] for e in step_events(other)]
    assert [e["loss"] for e in steps] == pytest.approx(straight, rel=1e-5)


def test_resume_without_a_state_is_one_line(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir)
    with pytest.raises(LoratuiError, match="no saved training state"):
        run_training(project, config, resume=True)


def _no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from loratui.training import models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the preflight refused")

    monkeypatch.setattr(models, "load_base_model", refuse)


def test_adamw8bit_without_bitsandbytes_fails_before_the_model_loads(
    tmp_path: Path, tiny_sd15_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import importlib.util

    assert importlib.util.find_spec("bitsandbytes") is None  # this environment has none, as the test assumes
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, optimizer="AdamW8bit")
    _no_model_loads(monkeypatch)
    assert main(["train", str(project.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install bitsandbytes" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("damage", ["missing model", "empty dataset", "output not writable"])
def test_bad_input_fails_in_one_line_before_the_model_loads(
    tmp_path: Path, tiny_sd15_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    damage: str,
) -> None:
    import shutil

    project, config = tiny_project(tmp_path, tiny_sd15_dir)
    if damage == "missing model":
        config.project.base_model = str(tmp_path / "nowhere.safetensors")
        project.save(config)
    elif damage == "empty dataset":
        shutil.rmtree(project.concept_dir(config.concepts[0]))
        # The source has a picture, so only its prepared copy is missing (an empty source would be named instead).
        (project.source_dir(config.concepts[0]) / "a.png").write_bytes(b"")
    else:
        shutil.rmtree(project.output_dir, ignore_errors=True)
        project.output_dir.write_text("a file where the folder should be")
    _no_model_loads(monkeypatch)
    assert main(["train", str(project.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = {"missing model": "nowhere.safetensors", "empty dataset": "no prepared pictures",
                "output not writable": "not writable"}[damage]
    assert len(err) == 1 and expected in err[0]


def test_train_command_runs_and_summarises(tmp_path: Path, tiny_sd15_dir: Path, capsys: pytest.CaptureFixture) -> None:
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=5)
    assert main(["train", str(project.root), "--max-steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "Done: 3/3 steps" in out and "output/project-000001.safetensors" in out
    assert "Next: loratui lora-info output/project.safetensors" in out
    assert (project.state_dir / "jobs" / "training.json").is_file()


def test_two_process_cpu_ddp_run_writes_once(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    """`--gpus 2` re-runs the command under `accelerate launch` (CPU mode here): both ranks train, rank 0 writes."""
    import os
    import subprocess
    import sys

    project, config = tiny_project(tmp_path, tiny_sd15_dir, {"akari": (2, [(128, 128)] * 4)}, epochs=1,
                                   save_every_n_epochs=0)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LORATUI_LAUNCHED", None)
    done = subprocess.run([sys.executable, "-m", "loratui", "train", str(project.root), "--gpus", "2"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    events = job_events(project)
    plans = [e for e in events if e["type"] == "plan"]
    assert len(plans) == 1 and plans[0]["processes"] == 2
    assert [e["type"] for e in events].count("start") == 1  # the launcher's job; the ranks attach to it
    plan = estimate(project, config, 2)
    assert plan.total_steps == 2  # 8 images, batch 2: 4 batches shared by 2 processes
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2]
    assert done.stdout.count("Done: 2/2 steps") == 1
    assert (project.output_dir / "project.safetensors").is_file()


@pytest.mark.parametrize("text_encoders", [False, True])
def test_sdxl_trains_with_pooled_embeddings_and_time_ids(
    tmp_path: Path, tiny_sdxl_dir: Path, text_encoders: bool
) -> None:
    from safetensors import safe_open

    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sdxl_dir, {"akari": (1, [(128, 128), (192, 64)])}, epochs=1,
                                   batch_size=1, train_text_encoder=text_encoders, save_every_n_epochs=0,
                                   gradient_checkpointing=text_encoders)
    result = run_training(project, config)
    assert result.steps == estimate(project, config).total_steps == 2
    with safe_open(str(result.final_file), framework="pt") as handle:
        keys = list(handle.keys())
        assert handle.metadata()["ss_base_model_version"] == "sdxl_base_v1-0"
    assert any(k.startswith("lora_unet_input_blocks_") for k in keys)
    assert any(k.startswith("lora_te2_") for k in keys) == text_encoders


def test_lion_follows_the_papers_update() -> None:
    import torch

    from loratui.training.optim import Lion

    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    optimizer = Lion([param], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    grads = [torch.tensor([0.3, -0.1, 0.0]), torch.tensor([-0.2, -0.4, 0.1])]
    expected, momentum = param.detach().clone(), torch.zeros(3)
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()
        update = (0.9 * momentum + 0.1 * grad).sign()
        expected = expected * (1 - 0.1 * 0.5) - 0.1 * update
        momentum = 0.99 * momentum + 0.01 * grad
    assert torch.allclose(param.detach(), expected)


def test_prodigy_without_its_package_and_warmup_with_constant_are_refused() -> None:
    import importlib.util

    from loratui.config import TrainingSettings
    from loratui.training.preflight import check_optimizer

    if importlib.util.find_spec("prodigyopt") is None:
        with pytest.raises(LoratuiError, match="pip install prodigyopt"):
            check_optimizer(TrainingSettings(optimizer="Prodigy", unet_lr=1.0))
    with pytest.raises(LoratuiError, match="constant_with_warmup"):
        check_optimizer(TrainingSettings(optimizer="AdamW", lr_scheduler="constant", lr_warmup_steps=10))
    assert check_optimizer(TrainingSettings(optimizer="Lion", unet_lr=1e-5, lr_scheduler="cosine")) == []


@pytest.mark.parametrize("name", ["constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial"])
def test_schedulers_follow_the_configured_shape(name: str) -> None:
    import torch

    from loratui.config import TrainingSettings
    from loratui.training.optim import build_optimizer, build_scheduler

    settings = TrainingSettings(lr_scheduler=name, lr_warmup_steps=2, lr_scheduler_num_cycles=2)
    optimizer = build_optimizer("AdamW", [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1.0}])
    scheduler = build_scheduler(settings, optimizer, 10)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.0 and rates[1] == pytest.approx(0.5) and rates[2] == pytest.approx(1.0)  # warmup
    if name == "constant_with_warmup":
        assert rates[2:] == [1.0] * 8
    else:
        assert rates[-1] < 0.5
    if name == "cosine_with_restarts":
        assert any(later > earlier for earlier, later in zip(rates[2:], rates[3:], strict=False))  # a restart
