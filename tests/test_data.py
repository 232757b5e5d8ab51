"""Training data: kohya batching per bucket (== the estimator's count), captions, pixels and the latent cache."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from loratui.config import Concept
from loratui.errors import LoratuiError
from loratui.project import create_project
from loratui.training.buckets import BucketAssigner, BucketSettings
from loratui.training.data import (
    CaptionSettings,
    LatentCache,
    TrainDataset,
    load_pixels,
    process_caption,
    resolve_keep_tokens,
)
from loratui.training.estimate import count_steps

SIZES_A = [(128, 128), (192, 64), (192, 64), (64, 192), (160, 128)]
SIZES_B = [(128, 128), (128, 128), (64, 256), (256, 64)]


def make_project(root: Path, concepts: dict[str, tuple[int, list[tuple[int, int]]]], *, captions: bool = True):
    """A project whose dataset folders hold pictures of the given sizes (and captions "NAME, tag i, extra")."""
    source = root / "src"
    source.mkdir(parents=True)
    first = next(iter(concepts))
    project, config = create_project(root / "project", source, first, repeats=concepts[first][0], trigger=first,
                                     base_model="models/none.safetensors")
    config.concepts = [Concept(name=name, source=str(source), repeats=repeats, trigger=name)
                       for name, (repeats, _) in concepts.items()]
    d = config.dataset
    d.resolution, d.min_bucket_reso, d.max_bucket_reso, d.bucket_reso_steps = 128, 64, 256, 64
    d.crop, d.enable_bucket, d.bucket_no_upscale = "none", True, False
    t = config.training
    t.batch_size, t.seed, t.flip_aug, t.shuffle_caption = 2, 7, False, True
    project.save(config)
    for concept in config.concepts:
        folder = project.concept_dir(concept)
        folder.mkdir(parents=True)
        for i, (w, h) in enumerate(concepts[concept.name][1]):
            colour = (40 * i % 255, 90, 200 - 20 * i)
            Image.new("RGB", (w, h), colour).save(folder / f"pic_{i:02d}.png")
            if captions:
                (folder / f"pic_{i:02d}.txt").write_text(f"{concept.name}, tag {i}, extra\n", encoding="utf-8")
    return project, project.load()


def test_batches_per_epoch_equal_the_estimators_count(tmp_path: Path) -> None:
    project, config = make_project(tmp_path, {"alice": (3, SIZES_A), "bob": (2, SIZES_B)})
    dataset = TrainDataset.from_project(project, config)
    assigner = BucketAssigner(BucketSettings.from_dataset(config.dataset))
    for batch_size in (1, 2, 3):
        dataset.batch_size = batch_size
        counted = count_steps([(3, SIZES_A), (2, SIZES_B)], assigner, batch_size)
        assert len(dataset.buckets) >= 3  # several buckets, or the test proves little
        for epoch in range(3):
            batches = dataset.epoch_batches(epoch)
            assert len(batches) == counted.batches_per_epoch
            # every picture exactly `repeats` times per epoch, and no batch mixes buckets
            seen = Counter(i for batch in batches for i in batch)
            assert seen == {i: p.repeats for i, p in enumerate(dataset.pictures)}
            for batch in batches:
                assert len({dataset.pictures[i].placement.bucket for i in batch}) == 1
                assert 1 <= len(batch) <= batch_size


def test_epoch_order_is_seeded_and_changes_per_epoch(tmp_path: Path) -> None:
    project, config = make_project(tmp_path, {"alice": (4, SIZES_A)})
    one = TrainDataset.from_project(project, config)
    two = TrainDataset.from_project(project, config)
    assert one.epoch_batches(0) == two.epoch_batches(0)
    assert one.epoch_batches(0) != one.epoch_batches(1)
    assert one.samples([0, 1], 0, 3) == two.samples([0, 1], 0, 3)


def test_process_batches_split_evenly_like_accelerate(tmp_path: Path) -> None:
    project, config = make_project(tmp_path, {"alice": (3, SIZES_A), "bob": (2, SIZES_B)})
    dataset = TrainDataset.from_project(project, config)
    batches = dataset.epoch_batches(0)
    shares = [dataset.process_batches(0, rank, 2) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == -(-len(batches) // 2)
    assert [b for pair in zip(*shares, strict=True) for b in pair][:len(batches)] == batches


def test_keep_tokens_auto_counts_the_trigger_tags() -> None:
    assert resolve_keep_tokens("auto", "akari") == 1
    assert resolve_keep_tokens("auto", "akari, red coat") == 2
    assert resolve_keep_tokens("auto", "") == 0
    assert resolve_keep_tokens(3, "akari") == 3


def test_caption_shuffle_and_tag_dropout_never_touch_the_kept_head() -> None:
    tags = ["akari", "red coat", "a", "b", "c", "d", "e"]
    settings = CaptionSettings(shuffle=True, tag_dropout_rate=0.5)
    rng = random.Random(1)
    results = [process_caption(tags, 2, settings, rng).split(", ") for _ in range(200)]
    assert all(r[:2] == ["akari", "red coat"] for r in results)
    assert any(len(r) < len(tags) for r in results)  # some tags were dropped
    assert len({tuple(r[2:]) for r in results if len(r) == len(tags)}) > 1  # and the rest shuffled
    plain = process_caption(tags, 2, CaptionSettings(), random.Random(0))
    assert plain == ", ".join(tags)


def test_whole_caption_dropout() -> None:
    rng = random.Random(3)
    results = [process_caption(["akari", "x"], 1, CaptionSettings(dropout_rate=0.5), rng) for _ in range(400)]
    empty = results.count("")
    assert 120 < empty < 280


def test_captions_read_from_disk_with_the_trigger_first(tmp_path: Path) -> None:
    project, config = make_project(tmp_path, {"alice": (1, SIZES_A[:2])})
    dataset = TrainDataset.from_project(project, config)
    assert dataset.pictures[0].tags == ("alice", "tag 0", "extra")
    assert dataset.pictures[0].keep_tokens == 1


def test_a_concept_without_captions_is_refused(tmp_path: Path) -> None:
    project, config = make_project(tmp_path, {"alice": (1, SIZES_A)}, captions=False)
    with pytest.raises(LoratuiError, match=r"no captions.*loratui tag"):
        TrainDataset.from_project(project, config)


def test_pixels_cover_the_bucket_in_minus_one_to_one(tmp_path: Path) -> None:
    project, config = make_project(tmp_path, {"alice": (1, [(256, 64), (160, 128)])})
    dataset = TrainDataset.from_project(project, config)
    for picture in dataset.pictures:
        pixels = load_pixels(picture)
        width, height = picture.placement.bucket
        assert tuple(pixels.shape) == (3, height, width)
        assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0


def _fake_encode(calls: list[int]):
    def encode(pixels):
        calls.append(pixels.shape[0])
        return pixels[:, :, ::8, ::8].clone()

    return encode


def test_disk_latent_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    import os

    project, config = make_project(tmp_path, {"alice": (1, SIZES_A[:3])})
    config.training.flip_aug = True
    dataset = TrainDataset.from_project(project, config)
    folder = project.state_dir / "latents"
    calls: list[int] = []
    first = LatentCache(dataset, "disk", folder, "vae-1")
    first.fill(_fake_encode(calls))
    assert calls == [2, 2, 2]  # both orientations per picture
    flipped = first.latents[0][1]
    assert flipped.equal(first.latents[0][0].flip(-1))

    again = LatentCache(dataset, "disk", folder, "vae-1")
    again.fill(_fake_encode(calls))
    assert again.reused == 3 and len(calls) == 3
    assert again.latents[1].equal(first.latents[1])

    other_vae = LatentCache(dataset, "disk", folder, "vae-2")
    other_vae.fill(_fake_encode(calls))
    assert other_vae.reused == 0

    touched = dataset.pictures[0].path
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    later = LatentCache(dataset, "disk", folder, "vae-2")
    later.fill(_fake_encode(calls))
    assert later.reused == 2


def test_memory_cache_batches_pick_the_orientation(tmp_path: Path) -> None:
    from loratui.training.data import Sample

    project, config = make_project(tmp_path, {"alice": (1, [(128, 128), (128, 128)])})
    config.training.flip_aug = True
    dataset = TrainDataset.from_project(project, config)
    cache = LatentCache(dataset, "memory", tmp_path / "unused", "vae")
    cache.fill(_fake_encode([]))
    assert not (tmp_path / "unused").exists()
    batch = cache.batch([Sample(0, False, ""), Sample(1, True, "")])
    assert batch[0].equal(cache.latents[0][0]) and batch[1].equal(cache.latents[1][1])
