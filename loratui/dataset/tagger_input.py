"""WD14 tagger input: decoding pictures upright, alpha on white, the centred white square, BGR float32."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from loratui.errors import LoratuiError

_WHITE = (255, 255, 255)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."



class UnreadableImage(LoratuiError):
    """A picture that cannot be decoded; the message says why (the caller names the file)."""


def flatten_on_white(image: Image.Image) -> Image.Image:
    """RGB of any mode: transparency composited on white, 16-bit scaled to 8-bit, CMYK/palette/grey converted."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0  # 65535 -> 255
        image = Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), "L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image if image.mode == "RGB" else image.convert("RGB")
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*_WHITE, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def to_model_input(square: Image.Image) -> np.ndarray:
    """side x side RGB picture -> float32 HWC in 0..255, channels BGR (WD14 graphs scale inside)."""
    return np.ascontiguousarray(np.asarray(square, dtype=np.float32)[:, :, ::-1])


def preprocess_exact(image: Image.Image, side: int) -> np.ndarray:
    """The reference (SmilingWolf's space): on white, pad to a centred white square, BICUBIC to ``side``.

    ``image`` is expected upright already (EXIF orientation applied), as :func:`open_upright` returns it.
    """
    rgb = flatten_on_white(image)
    width, height = rgb.size
    long_side = max(width, height)
    square = Image.new("RGB", (long_side, long_side), _WHITE)
    square.paste(rgb, ((long_side - width) // 2, (long_side - height) // 2))
    if long_side != side:
        square = square.resize((side, side), Image.Resampling.BICUBIC)
    return to_model_input(square)


def fit_on_white_square(rgb: Image.Image, side: int) -> Image.Image:
    """Scale so the long side is ``side``, then pad to a centred white square: the reference's result for
    far fewer pixels (the padding is never resampled). Differs from it only by rounding at the borders."""
    width, height = rgb.size
    long_side = max(width, height)
    if long_side != side:
        size = (max(1, round(width * side / long_side)), max(1, round(height * side / long_side)))
        # reducing_gap: a box-filter pre-shrink by an integer factor first; invisible at 3x, much faster.
        rgb = rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
        width, height = size
    if (width, height) == (side, side):
        return rgb
    square = Image.new("RGB", (side, side), _WHITE)
    square.paste(rgb, ((side - width) // 2, (side - height) // 2))
    return square


def draft_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """The smallest JPEG draft request that keeps the long side >= ``side`` (the short side may go below it:
    the square's padding, not the picture, fills the rest)."""
    width, height = size
    long_side = max(width, height)
    return max(1, -(-width * side // long_side)), max(1, -(-height * side // long_side))


def open_upright(path: Path, draft_side: int | None = None) -> Image.Image:
    """Decode a picture with EXIF orientation applied; JPEGs decode at 1/2, 1/4 or 1/8 size when
    ``draft_side`` allows (the DCT does the downscale, several times faster than decoding it all)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("empty file (0 bytes)")
        with Image.open(path) as opened:
            if draft_side and opened.format in ("JPEG", "MPO"):
                opened.draft("RGB", draft_size(opened.size, draft_side))
            ImageOps.exif_transpose(opened, in_place=True)  # loads the pixels (first frame of animations)
            return opened  # loaded pixels stay usable once the file is closed
    except UnreadableImage:
        raise
    except UnidentifiedImageError:
        kind = _signature_kind(path)
        if kind:
            raise UnreadableImage(f"damaged (starts like a {kind} file but cannot be decoded)") from None
        raise UnreadableImage("not a picture (unknown format, or not an image file)") from None
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"too many pixels, refused as a possible decompression bomb ({_short(exc)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(f"damaged or truncated ({_short(exc)})") from None
    except MemoryError:
        raise UnreadableImage("too large to decode in the memory available") from None
    except Exception as exc:  # a decoder bug on one odd file must not stop a run over hundreds
        raise UnreadableImage(f"cannot be decoded ({type(exc).__name__}: {_short(exc)})") from None


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"))


def _signature_kind(path: Path) -> str:
    """The format a file's first bytes claim, so a broken PNG is called damaged rather than 'not a picture'."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return ""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "")


def preprocess_file(path: Path, side: int, *, fast: bool = False) -> np.ndarray:
    """One picture file -> the model's input (float32 HWC BGR), decoded as the reference does by default.

    ``fast`` (tagging.fast_decode): JPEG draft + scale-then-pad, several times faster on large JPEGs but not the
    same pixels, enough to move a tag across the threshold (bench/tagger_decode.py), so it is opt-in.
    """
    if fast:
        return to_model_input(fit_on_white_square(flatten_on_white(open_upright(path, side)), side))
    return preprocess_exact(open_upright(path), side)


def default_workers() -> int:
    """One decoding thread per core: on a 16-core H200 box 16 threads fed 307 pictures/s of 2000x3000 JPEG
    against 185 with 8 (bench/gpu_tagger_feed.py), and the GPU still waited; Pillow releases the GIL."""
    return max(1, min(32, os.cpu_count() or 1))


def preprocess_files(
    paths: Iterable[Path], side: int, *, fast: bool = False, workers: int | None = None, ahead: int = 16
) -> Iterator[tuple[Path, np.ndarray | str]]:
    """(path, model input or the reason it is unreadable) in order, decoded by worker threads ``ahead`` files
    in front of the consumer, so decoding overlaps inference (Pillow and onnxruntime both release the GIL)."""
    pending: deque[tuple[Path, Future]] = deque()
    queue = iter(paths)
    pool = ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="loratui-decode")

    def submit_next() -> None:
        path = next(queue, None)
        if path is not None:
            pending.append((Path(path), pool.submit(preprocess_file, path, side, fast=fast)))

    try:
        for _ in range(max(1, ahead)):
            submit_next()
        while pending:
            path, future = pending.popleft()
            submit_next()
            try:
                yield path, future.result()
            except UnreadableImage as exc:
                yield path, str(exc)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
