"""The training data, with kohya's semantics: pictures x repeats per concept, bucket batches, captions, latent cache."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loratui.config import AUTO, Config
from loratui.dataset.captions import caption_path, read_caption, split_tags
from loratui.dataset.image_scan import dataset_pictures
from loratui.errors import LoratuiError
from loratui.project import Project
from loratui.training.buckets import BucketAssigner, BucketSettings, Placement, Size

if TYPE_CHECKING:
    import torch

CAPTION_SEPARATOR = ", "
LATENT_CACHE_VERSION = 1


@dataclass(frozen=True)
class TrainPicture:
    """One prepared picture: where it is, its caption's tags, its size and where it trains (bucket, crop)."""

    path: Path
    concept: str
    repeats: int
    tags: tuple[str, ...]
    keep_tokens: int  # leading tags that are never shuffled or dropped
    size: Size
    placement: Placement


@dataclass(frozen=True)
class CaptionSettings:
    """training.shuffle_caption / caption_dropout_rate / caption_tag_dropout_rate, as the loop applies them."""

    shuffle: bool = False
    dropout_rate: float = 0.0
    tag_dropout_rate: float = 0.0

    @classmethod
    def from_config(cls, config: Config) -> CaptionSettings:
        t = config.training
        return cls(t.shuffle_caption, t.caption_dropout_rate, t.caption_tag_dropout_rate)


@dataclass(frozen=True)
class Sample:
    """One picture as a step sees it: which picture, mirrored or not, and the caption text of this step."""

    index: int
    flip: bool
    caption: str


def resolve_keep_tokens(keep_tokens: int | str, trigger: str) -> int:
    """training.keep_tokens: a number, or "auto" = the number of comma-separated tags in the concept's trigger."""
    if keep_tokens == AUTO:
        return len(split_tags(trigger)) if trigger else 0
    return int(keep_tokens)


def process_caption(tags: Sequence[str], keep_tokens: int, settings: CaptionSettings, rng: random.Random) -> str:
    """kohya's process_caption: whole-caption dropout, then the tags after the first ``keep_tokens`` are shuffled
    and each dropped with the tag dropout rate; the kept head is never moved or dropped."""
    if settings.dropout_rate > 0 and rng.random() < settings.dropout_rate:
        return ""
    head, tail = list(tags[:keep_tokens]), list(tags[keep_tokens:])
    if settings.shuffle:
        rng.shuffle(tail)
    if settings.tag_dropout_rate > 0:
        tail = [tag for tag in tail if rng.random() >= settings.tag_dropout_rate]
    return CAPTION_SEPARATOR.join(head + tail)


class TrainDataset:
    """Every picture of a project's concepts, placed in its bucket, and the batches of each epoch.

    Randomness (batch order, flips, caption shuffles) is a pure function of (seed, epoch, batch), so a resumed
    run sees exactly the batches the interrupted one would have seen.
    """

    def __init__(self, pictures: list[TrainPicture], *, batch_size: int, seed: int, flip_aug: bool,
                 captions: CaptionSettings):
        if not pictures:
            raise ValueError("a dataset needs pictures")
        self.pictures = pictures
        self.batch_size = batch_size
        self.seed = seed
        self.flip_aug = flip_aug
        self.captions = captions

    @classmethod
    def from_project(cls, project: Project, config: Config) -> TrainDataset:
        assigner = BucketAssigner(BucketSettings.from_dataset(config.dataset))
        pictures = read_pictures(project, config, assigner)
        t = config.training
        return cls(pictures, batch_size=t.batch_size, seed=t.seed, flip_aug=t.flip_aug,
                   captions=CaptionSettings.from_config(config))

    @property
    def buckets(self) -> dict[Size, int]:
        """Bucket -> images per epoch (with repeats), kohya's logged "count"."""
        counts: dict[Size, int] = {}
        for picture in self.pictures:
            counts[picture.placement.bucket] = counts.get(picture.placement.bucket, 0) + picture.repeats
        return dict(sorted(counts.items()))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch (from 0): each picture ``repeats`` times, cut per bucket so a batch never
        mixes buckets, shuffled within buckets and then as a list of batches."""
        rng = random.Random(_mix(self.seed, "epoch", epoch))
        by_bucket: dict[Size, list[int]] = {}
        for index, picture in enumerate(self.pictures):
            by_bucket.setdefault(picture.placement.bucket, []).extend([index] * picture.repeats)
        batches: list[list[int]] = []
        for bucket in sorted(by_bucket):
            indices = by_bucket[bucket]
            rng.shuffle(indices)
            batches.extend(indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size))
        rng.shuffle(batches)
        return batches

    def process_batches(self, epoch: int, rank: int = 0, processes: int = 1) -> list[list[int]]:
        """This process's share of the epoch's batches; every process gets ceil(batches / processes), the short
        one topped up from the start as accelerate's even_batches does."""
        batches = self.epoch_batches(epoch)
        per_process = math.ceil(len(batches) / processes)
        return [batches[(i * processes + rank) % len(batches)] for i in range(per_process)]

    def samples(self, batch: Sequence[int], epoch: int, batch_index: int) -> list[Sample]:
        """The batch's pictures with this step's flips and captions."""
        rng = random.Random(_mix(self.seed, "batch", epoch, batch_index))
        result = []
        for index in batch:
            picture = self.pictures[index]
            flip = self.flip_aug and rng.random() < 0.5
            caption = process_caption(picture.tags, picture.keep_tokens, self.captions, rng)
            result.append(Sample(index, flip, caption))
        return result


def read_pictures(project: Project, config: Config, assigner: BucketAssigner) -> list[TrainPicture]:
    """Every concept's prepared pictures with their captions (the trigger first, as written on disk) and bucket.

    A picture without a caption trains on the concept's trigger (kohya's class tokens); no caption at all in a
    concept is refused, since it would teach nothing that a prompt can call up.
    """
    from PIL import Image

    if not config.concepts:
        raise LoratuiError(f"{project.config_path}: concepts: none: add a [[concepts]] table with name and source")
    pictures: list[TrainPicture] = []
    for concept in config.concepts:
        folder = project.concept_dir(concept)
        paths = dataset_pictures(folder)
        if not paths:
            raise LoratuiError(f"{folder}: no prepared pictures: run `loratui prepare {project.root}` first")
        keep = resolve_keep_tokens(config.training.keep_tokens, concept.trigger)
        found_caption = False
        for path in paths:
            tags = _caption_tags(path)
            found_caption = found_caption or tags is not None
            if tags is None:
                tags = split_tags(concept.trigger) if concept.trigger else [concept.name]
            try:
                with Image.open(path) as image:
                    size = image.size
            except (OSError, ValueError) as exc:
                raise LoratuiError(f"{path}: not a readable picture ({exc}): run `loratui prepare "
                                   f"{project.root}` again") from None
            pictures.append(TrainPicture(path, concept.name, concept.repeats, tuple(tags), keep, size,
                                         assigner.place(*size)))
        if not found_caption:
            raise LoratuiError(f"{folder}: no captions (.txt beside the pictures): run `loratui tag "
                               f"{project.root}` first")
    return pictures


def _caption_tags(picture: Path) -> list[str] | None:
    path = caption_path(picture)
    if not path.is_file():
        return None
    try:
        return read_caption(path).tags
    except OSError as exc:
        raise LoratuiError(f"{path}: cannot read this caption ({exc})") from None


def _mix(*parts: object) -> int:
    """A stable 64-bit seed from the parts (Python's hash() of a str changes per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# --- pixels ------------------------------------------------------------------------------------------------


def load_pixels(picture: TrainPicture) -> torch.Tensor:
    """The picture scaled to cover its bucket and centre-cropped, as a CHW float tensor in [-1, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    placement = picture.placement
    with Image.open(picture.path) as image:
        image = image.convert("RGB")
        # kohya resizes with INTER_AREA down and Lanczos up; BOX is PIL's area average.
        down = placement.resized[0] < image.width
        image = image.resize(placement.resized, Image.Resampling.BOX if down else Image.Resampling.LANCZOS)
        image = image.crop(placement.crop)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def pixel_batch(dataset: TrainDataset, samples: Sequence[Sample]) -> torch.Tensor:
    """The batch's pixels, mirrored where the sample says so."""
    import torch

    tensors = []
    for sample in samples:
        pixels = load_pixels(dataset.pictures[sample.index])
        tensors.append(pixels.flip(-1) if sample.flip else pixels)
    return torch.stack(tensors)


# --- latent cache ------------------------------------------------------------------------------------------


class LatentCache:
    """Each picture's VAE latents, encoded once (and, with flip_aug, mirrored too, as kohya caches both).

    ``mode`` "memory" keeps them in RAM; "disk" also keeps them under ``.loratui/latents/`` and reuses a file
    only when the picture (mtime, size), its bucket placement, the orientation set and the VAE are unchanged.
    """

    def __init__(self, dataset: TrainDataset, mode: str, folder: Path, vae_id: str):
        self.dataset = dataset
        self.mode = mode
        self.folder = folder
        self.vae_id = vae_id
        self.latents: dict[int, torch.Tensor] = {}  # index -> [1 or 2, C, h, w] (plain, mirrored)
        self.reused = 0

    def fill(self, encode: Callable[[torch.Tensor], torch.Tensor],
             progress: Callable[[int, int, str], None] = lambda done, total, item: None) -> None:
        """Encode (or read back) every picture; ``encode`` maps a pixel batch to latents on the CPU."""
        import torch

        total = len(self.dataset.pictures)
        for index, picture in enumerate(self.dataset.pictures):
            cached = self._read(picture) if self.mode == "disk" else None
            if cached is None:
                pixels = load_pixels(picture).unsqueeze(0)
                if self.dataset.flip_aug:
                    pixels = torch.cat([pixels, pixels.flip(-1)])
                cached = encode(pixels).to("cpu")
                if self.mode == "disk":
                    self._write(picture, cached)
            else:
                self.reused += 1
            self.latents[index] = cached
            progress(index + 1, total, picture.path.name)

    def batch(self, samples: Sequence[Sample]) -> torch.Tensor:
        import torch

        return torch.stack([self.latents[s.index][1 if s.flip else 0] for s in samples])

    def _file(self, picture: TrainPicture) -> Path:
        name = hashlib.sha1(str(picture.path.resolve()).encode()).hexdigest()[:20]
        return self.folder / f"{picture.path.stem[:40]}-{name}.safetensors"

    def _key(self, picture: TrainPicture) -> dict[str, str]:
        stat = picture.path.stat()
        p = picture.placement
        return {"version": str(LATENT_CACHE_VERSION), "source": str(picture.path.resolve()),
                "mtime_ns": str(stat.st_mtime_ns), "size": str(stat.st_size),
                "placement": json.dumps([p.bucket, p.resized, p.crop]), "flip": str(self.dataset.flip_aug),
                "vae": self.vae_id}

    def _read(self, picture: TrainPicture) -> torch.Tensor | None:
        from safetensors import SafetensorError, safe_open

        path = self._file(picture)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                if handle.metadata() != self._key(picture):
                    return None  # the picture, its bucket or the VAE changed: encode again
                return handle.get_tensor("latents")
        except (OSError, SafetensorError):
            return None  # a damaged cache file is only a cache miss

    def _write(self, picture: TrainPicture, latents: torch.Tensor) -> None:
        from safetensors.torch import save

        from loratui.fsutil import atomic_write_bytes

        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self._file(picture), save({"latents": latents.contiguous()}, self._key(picture)))


def vae_identity(vae: Any) -> str:
    """A short fingerprint of the VAE's weights and config: cached latents of another VAE are never reused."""
    import torch

    digest = hashlib.sha1(json.dumps(dict(vae.config), sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in list(vae.state_dict().items())[:4] + list(vae.state_dict().items())[-4:]:
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
