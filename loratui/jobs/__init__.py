"""The job contract: how the engine's long actions run, what they write, and how a UI follows and stops them.

A *job* is one run of prepare, tag, train or grid. Everything a UI (the wizard) or a script needs is here:

- ``kinds``      the kinds of job, the resource each locks (dataset: prepare, tag, tag edits; training: train;
                 preview: grid, pick, install) and the states (starting, running, stopping, done, stopped, failed,
                 lost). One job per resource at a time, so a grid renders while training runs.
- ``paths``      ``.loratui/jobs/<resource>.lock|.json|.stop`` and one events file per job,
                 ``logs/events/<job-id>.jsonl``.
- ``events``     every event type, declared once as a dataclass, versioned (``v``), stamped with the job id.
- ``event_log``  the appending writer (with listeners), the incremental reader, the last lines of a file.
- ``locks``      per-resource flock, re-entrant in a thread, naming its holder; inherited by a detached child.
- ``record``     the job record: id, kind, pid, command, status, events file, log (and the legacy job.json).
- ``runner``     ``job(project, kind)``: the context every job runs in (record, events, progress, stop, end).
- ``detached``   ``start_detached``: a job in its own session, returning a handle that polls without blocking.
- ``status``     ``JobTracker`` / ``job_status``: state and figures, read incrementally.
- ``stop``       the stop request and SIGTERM.
- ``command``    the options of each kind and the one function that builds its command line.

Nothing here imports torch, diffusers or textual: the wizard imports this package directly.
"""
