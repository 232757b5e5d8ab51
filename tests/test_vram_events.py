"""VRAM in the training job's step events: the loop writes it only on CUDA, and JobStatus folds the last figure
(a CPU run's status has none, and says where it trains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loratui.jobs import events as ev
from loratui.jobs.runner import job
from loratui.jobs.status import JobTracker, job_status
from loratui.project import create_project


@pytest.fixture
def project(tmp_path: Path):
    (tmp_path / "pics").mkdir()
    project, _ = create_project(tmp_path / "proj", tmp_path / "pics", "akari")
    return project


def test_step_events_carry_vram_and_the_status_folds_the_last(project) -> None:
    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.emit(ev.Plan(total_steps=10, steps_per_epoch=5, epochs=2, device="cuda:0"))
        handle.emit(ev.Step(step=1, total_steps=10, epoch=1, loss=0.2, images_per_s=3.0, vram_gb=7.9,
                            vram_total_gb=24.0))
        handle.emit(ev.Step(step=2, total_steps=10, epoch=1, loss=0.19, images_per_s=3.1, vram_gb=8.2,
                            vram_total_gb=24.0))
        tracker = JobTracker(project, "training")
        status = tracker.poll()
        assert status.alive and (status.vram_gb, status.vram_total_gb) == (8.2, 24.0)
        assert status.device == "cuda:0" and status.steps_per_epoch == 5
        assert status.speeds == [3.0, 3.1] and status.losses == [0.2, 0.19]
        # A step without the figure (it could not be read) keeps the last one.
        handle.emit(ev.Step(step=3, total_steps=10, epoch=1, loss=0.18, images_per_s=3.0))
        assert tracker.poll().vram_gb == 8.2
        handle.done(steps=3, total_steps=10)
    status = job_status(project, "training")
    assert status.vram_gb == 8.2 and "speeds" not in status.to_dict() and status.to_dict()["vram_gb"] == 8.2


def test_a_cpu_run_reports_no_vram(project) -> None:
    from loratui.training.loop import vram_in_use

    assert vram_in_use(type("Device", (), {"type": "cpu"})()) == {}
    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.emit(ev.Plan(total_steps=4, steps_per_epoch=2, epochs=2, device="cpu"))
        handle.emit(ev.Step(step=1, total_steps=4, epoch=1, loss=0.2, images_per_s=1.0))
        status = JobTracker(project, "training").poll()
    assert status.vram_gb is None and status.vram_total_gb is None and status.device == "cpu"
    line = ev.to_record(ev.Step(step=1, loss=0.2))
    assert "vram_gb" not in line  # not written at all, not written as null


def test_a_long_events_file_is_folded_in_chunks(project, monkeypatch) -> None:
    """Re-attaching to a long run reads its file a chunk at a time and ends where a single read would."""
    import loratui.jobs.status as status_module

    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.emit(ev.Plan(total_steps=3000, steps_per_epoch=100, epochs=30))
        for step in range(1, 3001):
            handle.emit(ev.Step(step=step, total_steps=3000, epoch=step // 100 + 1, loss=1 / step,
                                images_per_s=2.0))
        whole = JobTracker(project, "training").poll()
        monkeypatch.setattr(status_module, "READ_CHUNK", 4096)
        chunked = JobTracker(project, "training").poll()
    assert chunked.step == whole.step == 3000 and chunked.losses == whole.losses
    assert len(chunked.losses) == status_module.LOSS_HISTORY


def test_on_cuda_the_loop_reads_the_cards_memory() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    from loratui.training.loop import vram_in_use

    device = torch.device("cuda", 0)
    held = torch.empty(64 * 1024 * 1024, dtype=torch.uint8, device=device)  # 64 MB in torch's pool
    figures = vram_in_use(device)
    del held
    assert figures["vram_total_gb"] > 1 and 0.06 <= figures["vram_gb"] <= figures["vram_total_gb"]
