"""The events file: whole JSON lines with type and time, NaN as null, readers see only complete lines."""

from __future__ import annotations

import json

from loratui.training.events import EventReader, EventWriter, events_path, read_events


def test_events_are_whole_json_lines_with_type_and_time(tmp_path):
    path = events_path(tmp_path / "logs")
    with EventWriter(path) as events:
        events.start(config={"training": {"epochs": 2}}, total_steps=4, steps_per_epoch=2, epochs=2)
        events.step(step=1, epoch=1, loss=float("nan"), lr=1e-4, images_per_s=3.5, eta_s=12.0)
        events.checkpoint(path=tmp_path / "out-000001.safetensors", epoch=1)
        events.done(steps=4)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["start", "step", "checkpoint", "done"]
    step = json.loads(lines[1])
    assert step["loss"] is None and step["step"] == 1 and isinstance(step["time"], float)
    assert json.loads(lines[2])["path"].endswith("out-000001.safetensors")


def test_a_reader_waits_for_the_end_of_a_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "start", "time": 1}\n{"type": "st')
    reader = EventReader(path)
    assert [e["type"] for e in reader.read_new()] == ["start"]
    with open(path, "a") as handle:
        handle.write('ep", "time": 2}\n')
    assert [e["type"] for e in reader.read_new()] == ["step"]
    assert reader.read_new() == []


def test_a_disabled_writer_writes_nothing(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, enabled=False)  # a non-main process of a multi-GPU run
    writer.step(step=1, epoch=1, loss=0.1, lr=1e-4, images_per_s=1.0, eta_s=1.0)
    writer.close()
    assert not path.exists() and read_events(path) == []
