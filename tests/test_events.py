"""The event schema: typed, versioned lines with the job id; old files still read; undeclared types refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loratui.jobs import events as ev
from loratui.jobs.event_log import EventReader, EventWriter, read_events, read_raw, terminal_event


def test_events_are_whole_versioned_json_lines_with_the_job_id(tmp_path: Path) -> None:
    path = tmp_path / "job.jsonl"
    seen: list[ev.Event] = []
    with EventWriter(path, "train-1") as writer:
        writer.listeners.append(seen.append)
        writer.emit(ev.Start(kind="train", resource="training", pid=7, argv=["train", "/p"]))
        writer.emit(ev.Plan(total_steps=4, steps_per_epoch=2, epochs=2, config={"training": {"epochs": 2}}))
        writer.emit(ev.Step(step=1, total_steps=4, epoch=1, loss=float("nan"), lr=1e-4, images_per_s=3.5,
                            eta_s=12.0))
        writer.emit(ev.Checkpoint(path=str(tmp_path / "out-000001.safetensors"), epoch=1, step=2))
        writer.emit(ev.Done(result="out.safetensors", summary={"steps": 4}))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in records] == ["start", "plan", "step", "checkpoint", "done"]
    assert {r["v"] for r in records} == {ev.SCHEMA_VERSION} and {r["job"] for r in records} == {"train-1"}
    assert records[2]["loss"] is None and isinstance(records[2]["time"], float)  # NaN is written as null
    assert all(ev.check_record(r) == [] for r in records)
    assert [e.TYPE for e in seen] == [r["type"] for r in records]
    typed = read_events(path)
    assert isinstance(typed[2], ev.Step) and typed[2].step == 1 and typed[2].loss is None
    assert isinstance(typed[-1], ev.Done) and typed[-1].summary == {"steps": 4}


def test_only_declared_types_can_be_written(tmp_path: Path) -> None:
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(kw_only=True)
    class Sneaky(ev.Event):
        TYPE: ClassVar[str] = "sneaky"
        what: str = ""

    with EventWriter(tmp_path / "job.jsonl", "j") as writer, pytest.raises(TypeError, match="not a declared"):
        writer.emit(Sneaky(what="x"))
    assert read_raw(tmp_path / "job.jsonl") == []


def test_check_record_names_what_is_not_in_the_schema() -> None:
    good = {"v": 1, "job": "j", "type": "warning", "time": 1.0, "message": "m"}
    assert ev.check_record(good) == []
    assert ev.check_record({**good, "type": "shout"}) == ["undeclared type 'shout'"]
    assert ev.check_record({**good, "volume": 11}) == ["warning: undeclared fields ['volume']"]
    assert ev.check_record({"v": 1, "job": "j", "type": "warning", "time": 1.0}) == [
        "warning: missing fields ['message']"]
    assert "no job id" in ev.check_record({**good, "job": ""})


def test_every_event_type_is_declared_once() -> None:
    assert len(ev.EVENT_TYPES) == len(ev.EVENT_CLASSES)
    assert set(ev.EVENT_TYPES) == {"start", "plan", "step", "progress", "checkpoint", "cell", "warning", "error",
                                   "done"}


def test_old_unversioned_lines_still_read() -> None:
    """What loratui wrote into logs/events.jsonl before events had versions and job ids."""
    old = [
        {"type": "start", "time": 1.0, "config": {}, "total_steps": 96, "steps_per_epoch": 24, "epochs": 4},
        {"type": "step", "time": 2.0, "step": 1, "epoch": 1, "loss": 0.1, "lr": 1e-4, "images_per_s": 4.0,
         "eta_s": 95.0},
        {"type": "done", "time": 3.0, "stopped": False, "step": 96, "total_steps": 96, "final": "o/a.safetensors",
         "early": False},
        {"type": "done", "time": 4.0, "png": "preview/grid.png", "cells": 10},
        {"type": "done", "time": 5.0, "prepared": 6, "unchanged": 0},
        {"type": "done", "time": 6.0, "stopped": True},
        {"type": "cell", "time": 7.0, "checkpoint": "o/a.safetensors", "epoch": 2, "weight": 0.8, "row": 0,
         "column": 1, "file": "preview/cells/k.png", "seconds": 0.5, "score": 0.7, "error": None},
        {"type": "progress", "time": 8.0, "stage": "tag", "done": 3, "total": 6, "item": "a.png"},
        {"type": "future-thing", "time": 9.0, "x": 1},
    ]
    plan, step, train_done, grid_done, prepare_done, stopped, cell, progress, unknown = [
        ev.parse_event(r) for r in old]
    assert isinstance(plan, ev.Plan) and plan.total_steps == 96 and plan.epochs == 4
    assert isinstance(step, ev.Step) and step.loss == 0.1 and step.total_steps is None
    assert isinstance(train_done, ev.Done) and train_done.result == "o/a.safetensors" and not train_done.stopped
    assert train_done.summary == {"step": 96, "total_steps": 96, "early": False}
    assert grid_done.result == "preview/grid.png" and grid_done.summary == {"cells": 10}
    assert prepare_done.result is None and prepare_done.summary == {"prepared": 6, "unchanged": 0}
    assert stopped.stopped
    assert isinstance(cell, ev.Cell) and cell.weight == 0.8 and cell.score == 0.7
    assert isinstance(progress, ev.Progress) and progress.item == "a.png" and progress.rate is None
    assert isinstance(unknown, ev.Unknown) and unknown.type == "future-thing" and unknown.fields == {"x": 1}


def test_a_newer_field_is_ignored_and_a_broken_line_skipped(tmp_path: Path) -> None:
    path = tmp_path / "job.jsonl"
    path.write_text('{"v": 1, "job": "j", "type": "warning", "time": 1, "message": "m", "colour": "red"}\n'
                    'not json\n{"v": 1, "job": "j", "type": "step", "time": 2}\n'
                    '{"v": 1, "job": "j", "type": "error", "time": 3, "message": "boom"}\n')
    events = read_events(path)
    assert [e.TYPE for e in events] == ["warning", "error"]  # the step without its step number is dropped
    assert isinstance(terminal_event(path), ev.JobError)


def test_a_reader_waits_for_the_end_of_a_line(tmp_path: Path) -> None:
    path = tmp_path / "job.jsonl"
    path.write_text('{"v": 1, "job": "j", "type": "warning", "time": 1, "message": "a"}\n{"v": 1, "type": "wa')
    reader = EventReader(path)
    assert [e.TYPE for e in reader.read_new()] == ["warning"]
    with open(path, "a") as handle:
        handle.write('rning", "job": "j", "time": 2, "message": "b"}\n')
    assert [e.message for e in reader.read_new()] == ["b"]
    assert reader.read_new() == []


def test_a_disabled_writer_writes_nothing_but_still_tells_listeners(tmp_path: Path) -> None:
    path = tmp_path / "job.jsonl"
    writer = EventWriter(path, "j", enabled=False)  # a non-main process of a multi-GPU run
    seen: list[ev.Event] = []
    writer.listeners.append(seen.append)
    writer.emit(ev.Step(step=1, loss=0.1))
    writer.close()
    assert not path.exists() and read_events(path) == [] and len(seen) == 1


def test_the_terminal_event_is_found_at_the_end_of_a_long_file(tmp_path: Path) -> None:
    path = tmp_path / "job.jsonl"
    with EventWriter(path, "j") as writer:
        for step in range(1, 3001):
            writer.emit(ev.Step(step=step, loss=0.1))
        writer.emit(ev.Done(stopped=True))
    assert path.stat().st_size > 65536
    ending = terminal_event(path)
    assert isinstance(ending, ev.Done) and ending.stopped
