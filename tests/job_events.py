"""Reading a project's job events in tests: the lines of the last job on a resource, as written."""

from __future__ import annotations

from loratui.jobs.event_log import read_raw
from loratui.jobs.kinds import resource_of
from loratui.jobs.record import read_record
from loratui.project import Project


def job_events(project: Project, kind: str = "train") -> list[dict]:
    """Every line of the last job of ``kind``'s resource (train: training; grid: preview; prepare/tag: dataset)."""
    record = read_record(project, resource_of(kind))
    return read_raw(record.events_path) if record is not None else []
