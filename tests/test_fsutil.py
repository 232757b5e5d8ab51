"""Atomic writes: all or nothing, normal permissions, and a full disk as a one-line message."""

from __future__ import annotations

import errno
import os

import pytest

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text


def test_new_files_get_the_umask_default_mode(tmp_path):
    path = tmp_path / "a.toml"
    atomic_write_text(path, "x = 1\n")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert path.read_text() == "x = 1\n"


def test_rewriting_keeps_the_old_mode(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert (path.read_text(), path.stat().st_mode & 0o777) == ("new", 0o640)


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "captions.txt"
    path.write_text("old caption")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(LoratuiError, match="the disk is full: free some space"):
        atomic_write_text(path, "new caption")
    assert path.read_text() == "old caption"
    assert [p.name for p in tmp_path.iterdir()] == ["captions.txt"]


def test_an_unwritable_folder_is_named(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file-not-folder"
        target.write_text("")
        with pytest.raises(LoratuiError, match="cannot write"):
            atomic_write_text(target / "x.txt", "y")  # a file where a folder should be
    else:
        tmp_path.chmod(0o500)
        with pytest.raises(LoratuiError, match="check the folder's permissions"):
            atomic_write_text(tmp_path / "x.txt", "y")
