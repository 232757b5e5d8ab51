"""Where the job files live: per-resource lock, record and stop request; one events file per job."""

from __future__ import annotations

from pathlib import Path

from loratui.project import Project

JOBS_DIR = "jobs"  # under .loratui/
EVENTS_DIR = "events"  # under logs/
# Written by loratui 0.x before jobs had ids: one record, one lock and one shared events file per project.
LEGACY_RECORD, LEGACY_LOCK, LEGACY_EVENTS = "job.json", "job.lock", "events.jsonl"


def jobs_dir(project: Project) -> Path:
    return project.state_dir / JOBS_DIR


def lock_path(project: Project, resource: str) -> Path:
    """The flock'd file of a resource; while held it names its holder (pid, kind, job id)."""
    return jobs_dir(project) / f"{resource}.lock"


def record_path(project: Project, resource: str) -> Path:
    """The record of the resource's current or last job (see record.JobRecord)."""
    return jobs_dir(project) / f"{resource}.json"


def stop_path(project: Project, resource: str) -> Path:
    """The stop request: its presence asks the resource's running job to finish its step, save and exit."""
    return jobs_dir(project) / f"{resource}.stop"


def status_cache_path(project: Project, job_id: str) -> Path:
    """What `status` has folded of a job's events so far, so the next call reads only what is new."""
    return jobs_dir(project) / f"{job_id}.status.json"


def events_dir(project: Project) -> Path:
    return project.logs_dir / EVENTS_DIR


def events_file(project: Project, job_id: str) -> Path:
    """One events file per job: `status`, `logs` and the wizard never mix two jobs."""
    return events_dir(project) / f"{job_id}.jsonl"


def log_file(project: Project, kind: str) -> Path:
    """Where a detached job's stdout and stderr go (appended, one header line per start)."""
    return project.logs_dir / f"{kind}.log"
