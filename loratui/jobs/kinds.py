"""Job kinds, the resource each one locks, and the states a job goes through."""

from __future__ import annotations

# Resources: one job (or quick edit) per resource at a time, so a grid can render while training runs.
DATASET, TRAINING, PREVIEW = "dataset", "training", "preview"
RESOURCES = (DATASET, TRAINING, PREVIEW)

# Every kind of job or locked edit, and the resource it holds.
KIND_RESOURCE = {
    "prepare": DATASET,
    "tag": DATASET,
    "tags": DATASET,  # caption edits: delete/keep tags, trigger word, undo
    "train": TRAINING,
    "grid": PREVIEW,
    "pick": PREVIEW,
    "install": PREVIEW,
}

# States. The record holds STARTING, RUNNING and the three final ones; STOPPING, LOST and NONE are derived.
STARTING, RUNNING, STOPPING = "starting", "running", "stopping"
DONE, STOPPED, FAILED, LOST, NONE = "done", "stopped", "failed", "lost", "none"
FINAL_STATES = (DONE, STOPPED, FAILED, LOST)


def resource_of(kind: str) -> str:
    """The resource a kind of job locks; a kind not listed (a tool's own job) gets a resource of its own name."""
    return KIND_RESOURCE.get(kind, kind)


def resolve_job_name(name: str) -> str:
    """`--job` takes a kind (train, grid, tag...) or a resource (training, preview, dataset): the resource."""
    from loratui.errors import LoratuiError

    if name in RESOURCES:
        return name
    if name in KIND_RESOURCE:
        return KIND_RESOURCE[name]
    names = ", ".join([*RESOURCES, *KIND_RESOURCE])
    raise LoratuiError(f"--job {name}: unknown: use one of {names}")
