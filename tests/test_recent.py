"""The recent projects: remembered on open/new/demo, listed with their jobs' state, tolerant of a damaged file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from test_jobs import HeldJob

from loratui import recent
from loratui.cli import main
from loratui.commands.recent_cmd import NO_PROJECTS
from loratui.errors import LoratuiError
from loratui.jobs import events as ev
from loratui.jobs.kinds import DONE, FAILED, RUNNING
from loratui.jobs.runner import job
from loratui.project import Project
from loratui.recent import KEEP, RecentProject, forget, job_label, opened_ago, prune, recent_projects, remember

WAIT_S = 60


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-data"
    monkeypatch.setenv("LORATUI_DATA_DIR", str(folder))
    return folder


def make_project(where: Path, toml: str = "") -> Path:
    where.mkdir(parents=True)
    (where / "loratui.toml").write_text(toml, encoding="utf-8")
    return where


def stored(data_dir: Path) -> dict:
    return json.loads((data_dir / "recent-projects.json").read_text(encoding="utf-8"))


def paths() -> list[Path]:
    return [p.path for p in recent_projects(limit=None)]


# --- remember, order, limit, forget, prune ---------------------------------------------------------------------


def test_nothing_remembered_yet_is_an_empty_list(data_dir):
    assert recent_projects() == []
    assert not data_dir.exists()  # listing writes nothing


def test_the_last_opened_comes_first_and_is_stored_resolved(tmp_path, data_dir, monkeypatch):
    a, b, c = (make_project(tmp_path / name) for name in ("a", "b", "c"))
    monkeypatch.chdir(tmp_path)
    remember(Path("a"))  # relative: stored as the absolute, resolved path
    remember(b)
    (tmp_path / "link-to-c").symlink_to(c)
    before = time.time()
    remember(tmp_path / "link-to-c")
    assert paths() == [c, b, a]
    remember(a / ".." / "a")  # opened again: to the front, once
    assert paths() == [a, c, b]
    entries = stored(data_dir)["projects"]
    assert [e["path"] for e in entries] == [str(a), str(c), str(b)]
    assert all(isinstance(e["opened"], float) for e in entries)
    assert entries[1]["opened"] >= before


def test_at_most_20_are_kept_and_10_listed_by_default(tmp_path):
    roots = [make_project(tmp_path / f"p{i:02d}") for i in range(KEEP + 5)]
    for root in roots:
        remember(root)
    newest_first = roots[::-1]
    assert [p.path for p in recent_projects()] == newest_first[:10]
    assert [p.path for p in recent_projects(limit=3)] == newest_first[:3]
    assert paths() == newest_first[:KEEP]
    assert KEEP == 20


def test_forget_drops_one_and_leaves_its_folder(tmp_path):
    a, b = make_project(tmp_path / "a"), make_project(tmp_path / "b")
    remember(a)
    remember(b)
    assert forget(a) is True
    assert paths() == [b]
    assert (a / "loratui.toml").is_file()
    assert forget(a) is False


def test_a_gone_folder_is_listed_greyed_out_until_pruned(tmp_path):
    kept, gone, emptied = (make_project(tmp_path / name) for name in ("kept", "gone", "emptied"))
    for root in (gone, emptied, kept):
        remember(root)
    (gone / "loratui.toml").unlink()
    gone.rmdir()
    (emptied / "loratui.toml").unlink()  # the folder is there, the project is not
    listed = recent_projects()
    assert [(p.path, p.exists) for p in listed] == [(kept, True), (emptied, False), (gone, False)]
    assert listed[2] == RecentProject(gone, "gone", listed[2].opened, exists=False)
    assert prune() == [emptied, gone]
    assert paths() == [kept]
    assert prune() == []


def test_writers_at_once_lose_nothing(tmp_path):
    roots = [make_project(tmp_path / f"p{i}") for i in range(12)]
    threads = [threading.Thread(target=remember, args=(root,)) for root in roots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert sorted(paths()) == sorted(roots)


# --- a damaged or unwritable file ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b'{"version": 1, "projects": [{"path": "/x", "ope',  # cut short
    b"\xff\xfe\x00garbage",  # not UTF-8
    b"[1, 2, 3]",  # not an object
    b'{"projects": "nope"}',
    b"",
])
def test_a_damaged_file_is_an_empty_list_and_the_next_remember_rewrites_it(tmp_path, data_dir, content):
    data_dir.mkdir()
    (data_dir / "recent-projects.json").write_bytes(content)
    assert recent_projects() == []
    root = make_project(tmp_path / "proj")
    remember(root)
    assert paths() == [root]
    assert stored(data_dir)["version"] == 1


def test_bad_entries_are_skipped_the_good_ones_kept(tmp_path, data_dir):
    good = make_project(tmp_path / "good")
    data_dir.mkdir()
    (data_dir / "recent-projects.json").write_text(json.dumps({"version": 1, "projects": [
        {"path": "relative/path", "opened": 1.0}, {"path": str(good)}, {"path": 7, "opened": 1.0},
        {"path": str(good), "opened": "yesterday"}, {"path": str(good), "opened": True}, "nope",
        {"path": str(good), "opened": 1000.0}, {"path": str(good), "opened": 2000.0}]}))
    assert [(p.path, p.opened) for p in recent_projects()] == [(good, 1000.0)]


def test_remember_never_fails_where_the_list_cannot_be_written(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LORATUI_DATA_DIR", str(blocker / "loratui"))
    root = make_project(tmp_path / "proj")
    remember(root)  # the project still opens; the list just stays as it was
    assert recent_projects() == []
    with pytest.raises(LoratuiError, match="recent-projects.json: cannot write"):
        forget(root)


# --- what a project says: its name, its job --------------------------------------------------------------------------


def test_the_name_comes_from_the_settings_and_a_broken_file_gives_the_folder_name(tmp_path):
    named = make_project(tmp_path / "rishi-v2", '[project]\nname = "Rishi, second try"\n')
    unnamed = make_project(tmp_path / "plain", '[project]\nname = ""\n')
    broken = make_project(tmp_path / "broken", "[project\nname = = 3")
    binary = make_project(tmp_path / "binary")
    (binary / "loratui.toml").write_bytes(b"\xff\xfe\x00\x01")
    wrong = make_project(tmp_path / "wrong", "project = 3\n")
    for root in (named, unnamed, broken, binary, wrong):
        remember(root)
    names = {p.path.name: p.name for p in recent_projects()}
    assert names == {"rishi-v2": "Rishi, second try", "plain": "plain", "broken": "broken", "binary": "binary",
                     "wrong": "wrong"}


def test_no_job_yet_has_no_job_state(tmp_path):
    remember(make_project(tmp_path / "fresh"))
    (listed,) = recent_projects()
    assert (listed.job, listed.job_kind, listed.job_state, listed.percent) == (None, None, None, None)


def test_a_finished_and_a_failed_job(tmp_path):
    done, failed = make_project(tmp_path / "done"), make_project(tmp_path / "failed")
    with job(Project(done), "train", ["train", str(done)]) as handle:
        handle.emit(ev.Step(step=10, total_steps=10, loss=0.1))
    with pytest.raises(RuntimeError), job(Project(failed), "train", ["train", str(failed)]):
        raise RuntimeError("CUDA out of memory")
    remember(done)
    remember(failed)
    by_name = {p.name: p for p in recent_projects()}
    assert (by_name["done"].job, by_name["done"].job_kind, by_name["done"].job_state) == ("DONE", "train", DONE)
    assert by_name["done"].percent is None  # a percent only while it runs
    assert (by_name["failed"].job, by_name["failed"].job_state) == ("FAILED", FAILED)


def test_a_running_job_shows_its_percent_and_then_its_end(tmp_path):
    root = make_project(tmp_path / "rishi-v2")
    remember(root)

    def body(handle):
        handle.emit(ev.Plan(total_steps=960, epochs=10))
        handle.emit(ev.Step(step=399, total_steps=960, epoch=4, loss=0.09))

    with HeldJob(Project(root), "train", body):
        (listed,) = recent_projects()
        assert (listed.job, listed.job_state) == ("TRAINING 41%", RUNNING)
        assert listed.percent == pytest.approx(41.5625)
    (listed,) = recent_projects()
    assert listed.job == "DONE"


def test_a_running_job_wins_over_a_later_finished_one(tmp_path):
    root = make_project(tmp_path / "proj")
    remember(root)
    with HeldJob(Project(root), "train", lambda handle: handle.emit(ev.Step(step=5, total_steps=20))):
        with job(Project(root), "prepare", ["prepare", str(root)]):
            pass
        assert recent_projects()[0].job == "TRAINING 25%"
    assert recent_projects()[0].job == "PREPARE DONE"  # training ended first: prepare started last


def test_job_labels():
    from loratui.jobs.status import JobStatus

    assert job_label(JobStatus(state="none")) is None
    assert job_label(JobStatus(state="running", kind="train")) == "TRAINING"  # no step yet
    assert job_label(JobStatus(state="running", kind="train", step=999, total_steps=1000)) == "TRAINING 99%"
    assert job_label(JobStatus(state="running", kind="tag", done=3, total=12)) == "TAGGING 25%"
    assert job_label(JobStatus(state="stopping", kind="train", step=1, total_steps=2)) == "STOPPING"
    assert job_label(JobStatus(state="stopped", kind="train")) == "STOPPED"
    assert job_label(JobStatus(state="lost", kind="train")) == "LOST"
    assert job_label(JobStatus(state="done", kind="grid")) == "GRID DONE"
    assert job_label(JobStatus(state="failed", kind="tag")) == "TAG FAILED"


def test_opened_ago():
    assert opened_ago(1000.0, now=1021.0) == "21s ago"
    assert opened_ago(0.0, now=2 * 3600 + 7 * 60) == "2h07m ago"
    assert opened_ago(0.0, now=86400 + 5) == "1 day ago"
    assert opened_ago(0.0, now=3 * 86400 + 5) == "3 days ago"
    assert opened_ago(100.0, now=50.0) == "0s ago"  # a clock set back


# --- the CLI -----------------------------------------------------------------------------------------------------


def write_list(data_dir: Path, entries: list[tuple[Path, float]]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "recent-projects.json").write_text(json.dumps(
        {"version": 1, "projects": [{"path": str(path), "opened": opened} for path, opened in entries]}))


def test_recent_with_nothing_remembered(capsys):
    assert main(["recent"]) == 0
    assert capsys.readouterr().out == f"{NO_PROJECTS}\n"
    assert NO_PROJECTS == "No recent projects yet: `loratui DIR` opens one and remembers it."


def test_recent_prints_one_aligned_line_per_project(tmp_path, data_dir, capsys):
    rishi = make_project(tmp_path / "rishi-v2")
    sasuke = make_project(tmp_path / "sasuke", '[project]\nname = "sasuke"\n')
    gone = tmp_path / "old-test"
    with job(Project(sasuke), "train", ["train", str(sasuke)]):
        pass
    now = time.time()
    write_list(data_dir, [(rishi, now - 7260), (sasuke, now - 3 * 86400 - 100), (gone, now - 1.5 * 86400)])

    def body(handle):
        handle.emit(ev.Step(step=41, total_steps=100))

    with HeldJob(Project(rishi), "train", body):
        assert main(["recent"]) == 0
    width = len(str(tmp_path)) + len("/rishi-v2")
    assert capsys.readouterr().out.splitlines() == [
        f"rishi-v2  TRAINING 41%  {str(rishi):<{width}}  2h01m ago",
        f"sasuke    DONE          {str(sasuke):<{width}}  3 days ago",
        f"old-test  MISSING       {str(gone):<{width}}  1 day ago",
        "1 of these is gone (no loratui.toml): `loratui recent --prune` forgets them",
    ]


def test_recent_json(tmp_path, data_dir, capsys):
    root = make_project(tmp_path / "proj")
    write_list(data_dir, [(root, 1234.5)])
    assert main(["recent", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{
        "path": str(root), "name": "proj", "opened": 1234.5, "exists": True, "job": None, "job_kind": None,
        "job_state": None, "percent": None}]


def test_recent_forget_and_prune(tmp_path, capsys):
    a, b = make_project(tmp_path / "a"), make_project(tmp_path / "b")
    remember(a)
    remember(b)
    assert main(["recent", "--forget", str(a)]) == 0
    assert capsys.readouterr().out == f"Forgot {a} (its folder is left as it is)\n"
    assert main(["recent", "--forget", str(a)]) == 2
    assert capsys.readouterr().err == f"loratui: {a}: not in the recent projects (`loratui recent` lists them)\n"
    assert main(["recent", "--prune"]) == 0
    assert capsys.readouterr().out == "Nothing to prune: every recent project is still there\n"
    (b / "loratui.toml").unlink()
    assert main(["recent", "--prune"]) == 0
    assert capsys.readouterr().out == f"Forgot {b} (no loratui.toml there any more)\n"
    assert main(["recent"]) == 0
    assert capsys.readouterr().out == f"{NO_PROJECTS}\n"


def test_new_remembers_the_project(tmp_path, monkeypatch, capsys):
    (tmp_path / "pictures").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["new", "rishi-v2", "--source", "pictures", "--concept", "Rishi"]) == 0
    (listed,) = recent_projects()
    assert (listed.path, listed.name, listed.exists, listed.job) == (tmp_path / "rishi-v2", "rishi-v2", True, None)
    capsys.readouterr()
    assert main(["new", "rishi-v2", "--source", "pictures", "--concept", "Rishi"]) == 2  # refused: not remembered again
    assert len(recent_projects()) == 1


def test_the_module_loads_no_heavy_library_nor_textual():
    import subprocess
    import sys

    probe = ("import sys, loratui.recent, loratui.commands.recent_cmd\n"
             "print(' '.join(m for m in ('torch', 'diffusers', 'transformers', 'textual') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=WAIT_S,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
    assert recent.__doc__
