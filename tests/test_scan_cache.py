"""The caches that keep the wizard quick on big projects: the Images scan's facts per file and the previews'
thumbnails under .loratui/, each used only while the file is unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from loratui.dataset import image_stream
from loratui.dataset.image_scan import scan_source
from loratui.dataset.image_stream import inspect_each
from loratui.dataset.scan_cache import ScanCache
from loratui.dataset.thumbnails import SIDE, load_thumbnail, thumbnail_path
from loratui.progress import FileNote


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pics"
    folder.mkdir()
    for index, size in enumerate([(640, 960), (800, 800), (1200, 700)]):
        Image.new("RGB", size, (40 * index, 90, 200)).save(folder / f"p{index}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The names of the files the scan decodes."""
    seen: list[str] = []
    real = image_stream._inspect_one

    def counting(entry):
        seen.append(entry.path.name)
        return real(entry)

    monkeypatch.setattr(image_stream, "_inspect_one", counting)
    return seen


def _facts(found) -> tuple:
    if isinstance(found, FileNote):
        return ("broken", found.message)
    return (found.width, found.height, found.format, found.mode, found.hash, round(found.scale, 6))


def test_a_second_scan_decodes_only_the_files_that_changed(folder, tmp_path, decodes):
    cache_file = tmp_path / "state" / "scan-cache.json"
    entries = scan_source(folder)
    cache = ScanCache(cache_file)
    first = [(e.relpath, _facts(found)) for e, found in inspect_each(entries, 512, cache=cache)]
    cache.save()
    assert sorted(decodes) == ["broken.jpg", "p0.png", "p1.png", "p2.png"]
    assert cache_file.is_file()

    decodes.clear()
    second = [(e.relpath, _facts(found)) for e, found in inspect_each(scan_source(folder), 512,
                                                                     cache=ScanCache(cache_file))]
    assert decodes == [] and second == first  # the broken file's reason comes from the cache too

    # A changed file (new bytes, new time) is decoded again; the rest still come from the cache.
    Image.new("RGB", (300, 300), "red").save(folder / "p1.png")
    os.utime(folder / "p1.png", ns=(1, 1))
    third = dict((e.relpath, _facts(found)) for e, found in inspect_each(scan_source(folder), 512,
                                                                         cache=ScanCache(cache_file)))
    assert decodes == ["p1.png"] and third["p1.png"][:2] == (300, 300)


def test_a_damaged_or_foreign_cache_is_ignored_and_replaced(folder, tmp_path, decodes):
    cache_file = tmp_path / "scan-cache.json"
    for junk in ("{not json", '{"version": 999, "files": {}}', '{"version": 1, "files": {"x": [1, 2, 3]}}'):
        cache_file.write_text(junk)
        decodes.clear()
        cache = ScanCache(cache_file)
        assert len(list(inspect_each(scan_source(folder), 512, cache=cache))) == 4
        assert len(decodes) == 4
    cache.save()
    assert '"version":1' in cache_file.read_text()


def test_a_cache_that_cannot_be_written_costs_nothing_but_time(folder, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    cache = ScanCache(blocked / "scan-cache.json")
    assert len(list(inspect_each(scan_source(folder), 512, cache=cache))) == 4
    cache.save()  # no exception: the scan itself worked


def test_thumbnails_are_made_once_small_and_upright_and_remade_for_a_changed_file(folder, tmp_path, monkeypatch):
    from loratui.dataset import thumbnails

    cache_dir = tmp_path / "thumbs"
    picture = folder / "p0.png"
    thumb = load_thumbnail(picture, cache_dir)
    assert max(thumb.size) == SIDE and thumb.size == (171, 256)  # 640x960 kept its shape
    made = thumbnail_path(picture, cache_dir)
    assert made.is_file()

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(thumbnails, "load_image", no_decode)
    assert load_thumbnail(picture, cache_dir).size == (171, 256)  # from the cache
    monkeypatch.undo()

    Image.new("RGB", (100, 50), "blue").save(picture)
    os.utime(picture, ns=(5, 5))
    assert thumbnail_path(picture, cache_dir) != made
    assert load_thumbnail(picture, cache_dir).size == (100, 50)  # never enlarged
    assert load_thumbnail(picture, None).size == (100, 50)  # without a project: no cache, same picture


def test_the_thumbnail_cache_is_kept_under_its_size_oldest_first(folder, tmp_path):
    from loratui.dataset.thumbnails import prune_thumbnails

    cache_dir = tmp_path / "thumbs"
    made = []
    for index, picture in enumerate(sorted(folder.glob("p*.png"))):
        load_thumbnail(picture, cache_dir)
        made.append(thumbnail_path(picture, cache_dir))
        os.utime(made[-1], ns=(index * 10**9, index * 10**9))  # made one after the other
    sizes = [path.stat().st_size for path in made]
    assert prune_thumbnails(cache_dir, max_bytes=sum(sizes)) == 0  # within bounds: nothing goes
    assert prune_thumbnails(cache_dir, max_bytes=sum(sizes) - 1) == 1
    assert not made[0].exists() and made[1].exists() and made[2].exists()  # the oldest went first
    assert prune_thumbnails(tmp_path / "none", max_bytes=0) == 0  # no folder yet: nothing to do
    load_thumbnail(folder / "p0.png", cache_dir)  # a pruned one is only made again
    assert made[0].exists()
