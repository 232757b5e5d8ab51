"""Source pictures: scanning a folder, opening any picture safely as upright RGB, and inspecting a set of them."""

from __future__ import annotations

import io
import math
import os
import re
import statistics
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile

from loratui.errors import LoratuiError
from loratui.progress import CancelToken, FileNote, Progress, ProgressCallback, no_progress

# What kohya trains on (in any case). Sources may also be GIF or TIFF: prepare writes PNG anyway.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SOURCE_SUFFIXES = (*IMAGE_SUFFIXES, ".gif", ".tif", ".tiff")
# Pictures users have that Pillow cannot read without plugins: named in the report instead of silently ignored.
UNSUPPORTED_SUFFIXES = {
    ".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".jxl": "JPEG XL", ".psd": "Photoshop", ".kra": "Krita",
    ".clip": "Clip Studio", ".svg": "SVG", ".dng": "camera raw", ".cr2": "camera raw", ".cr3": "camera raw",
    ".nef": "camera raw", ".arw": "camera raw", ".orf": "camera raw", ".raf": "camera raw", ".rw2": "camera raw",
}
# Formats Pillow may decode for us. Anything else wearing a picture's name (EPS would start Ghostscript, for one)
# is refused rather than handed to a plugin nobody meant to run.
READABLE_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "GIF", "TIFF")
# Twice Pillow's warning threshold (= Pillow's own hard limit): a 13000x13000 scan still opens, a bomb does not.
MAX_PIXELS = 2 * 89_478_485
# Folders a loratui project keeps beside its loratui.toml: never mistaken for source pictures.
PROJECT_FOLDERS = frozenset({"dataset", "output", "preview", "logs", "models"})
WHITE = (255, 255, 255)

# The article asks for pictures at least twice the training size; below 1x they have to be enlarged.
GOOD_SCALE = 2.0
MIN_IMAGES, IDEAL_IMAGES, MANY_IMAGES = 15, (20, 50), 200
# Perceptual hashes (64 bits) this close are near-duplicates: resized, recompressed or re-encoded copies land
# within 0-2 bits; the 24 different shots of the one demo character (same palette, similar framing) stay 10+ apart.
DUPLICATE_DISTANCE = 6
_HASH_SIDE = 32
# Of the 63 low frequencies, how many must carry something for the hash to mean anything: drawings and photos
# have 39-60 (the demo set), a gradient or a few flat blocks 0-8.
_MIN_HASH_DETAIL = 16
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112

# MAX_PIXELS is enforced explicitly below; Pillow's softer warning between 89 and 179 MP would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Truncated files must fail, not come back half grey (Pillow's default; a library that flips it breaks that).
ImageFile.LOAD_TRUNCATED_IMAGES = False


class UnreadableImage(LoratuiError):
    """A file that cannot be used as a picture, with the reason in words (it is skipped, never fatal)."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# --- scanning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceEntry:
    """One picture file of a source folder."""

    path: Path
    relpath: str  # POSIX path relative to the source folder: the key of exclusions and crop boxes
    file_size: int
    mtime_ns: int
    excluded: bool = False


def scan_source(
    folder: Path, recursive: bool = False, exclude: Sequence[str] = (), *, include_excluded: bool = False
) -> list[SourceEntry]:
    """Every picture file of ``folder`` in natural name order (img2 before img10).

    Suffixes .png .jpg .jpeg .webp .bmp .gif .tif .tiff in any case. Hidden files and folders, and the folders
    of a loratui project found inside, are passed over. ``exclude`` holds relative paths or glob patterns
    (``rejects/*``); excluded pictures are left out unless ``include_excluded`` asks for them (flagged).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LoratuiError(f"{folder}: no such folder: point the concept's source at the folder of your pictures")
    entries = []
    for path in _walk(folder, recursive, SOURCE_SUFFIXES):
        relpath = path.relative_to(folder).as_posix()
        excluded = is_excluded(relpath, exclude)
        if excluded and not include_excluded:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue  # vanished between listing and stat: it is simply not there any more
        entries.append(SourceEntry(path, relpath, stat.st_size, stat.st_mtime_ns, excluded))
    entries.sort(key=lambda entry: natural_key(entry.relpath))
    return entries


def unsupported_pictures(folder: Path, recursive: bool = False, exclude: Sequence[str] = ()) -> list[FileNote]:
    """Pictures in formats loratui cannot read (HEIC, PSD, camera raw ...), each with what to do about it."""
    folder = Path(folder)
    notes = []
    for path in _walk(folder, recursive, tuple(UNSUPPORTED_SUFFIXES)):
        if not is_excluded(path.relative_to(folder).as_posix(), exclude):
            kind = UNSUPPORTED_SUFFIXES[path.suffix.lower()]
            notes.append(FileNote(path, f"{kind} files are not supported: export it as PNG or JPEG to use it"))
    return sorted(notes, key=lambda note: natural_key(note.path.name))


def is_excluded(relpath: str, patterns: Sequence[str]) -> bool:
    """Whether ``relpath`` is named by an exclusion: the exact relative path or a glob pattern."""
    return any(relpath == pattern or fnmatchcase(relpath, pattern) for pattern in patterns)


def natural_key(text: str) -> tuple:
    """Sort key that orders digits by value and ignores case: img2 < img10 < Img11."""
    return tuple(int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", text))


def _walk(folder: Path, recursive: bool, suffixes: tuple[str, ...]) -> Iterable[Path]:
    try:
        children = list(os.scandir(folder))
    except PermissionError as exc:
        raise LoratuiError(f"{folder}: cannot read this folder (permission denied): check its permissions") from exc
    except OSError as exc:
        raise LoratuiError(f"{folder}: cannot read this folder: {exc.strerror or exc}") from exc
    is_project = any(child.name == "loratui.toml" for child in children)
    for child in children:
        if child.name.startswith("."):
            continue
        try:
            if child.is_file():
                if Path(child.name).suffix.lower() in suffixes:
                    yield Path(child.path)
            elif recursive and child.is_dir() and not (is_project and child.name in PROJECT_FOLDERS):
                if not (Path(child.path) / "loratui.toml").exists():
                    yield from _walk(Path(child.path), recursive, suffixes)
        except OSError:
            continue


# --- opening -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """What a picture's header says, without decoding its pixels. Sizes are upright (EXIF orientation applied)."""

    width: int
    height: int
    format: str
    mode: str
    animated: bool = False
    orientation: int = 1


@dataclass
class LoadedImage:
    """A decoded picture: RGB, upright, maybe decoded at a reduced scale (JPEG draft)."""

    image: Image.Image
    size: tuple[int, int]  # the full upright size of the picture in the file
    format: str
    notes: list[str] = field(default_factory=list)  # what was converted (kept for the summary and the wizard)

    @property
    def scale(self) -> float:
        """Decoded pixels per source pixel (1.0 unless decoded as a draft)."""
        return self.image.width / self.size[0]


def probe_image(path: Path) -> ImageInfo:
    """Read a picture's header: size, format, mode, animation. Raises :class:`UnreadableImage` with the reason."""
    with _opened(path) as image:
        return _info(image)


def open_image(path: Path) -> Image.Image:
    """The picture at full size as upright RGB (alpha on white). Raises :class:`UnreadableImage`."""
    return load_image(path).image


def load_image(path: Path, min_size: tuple[int, int] | None = None) -> LoadedImage:
    """Decode a picture as upright RGB, with every conversion users' files need.

    EXIF orientation applied; CMYK, palette, grey+alpha, 16-bit and RGBA turned into RGB with alpha composited
    on white; animated files give their first frame. With ``min_size`` (upright width, height) a JPEG is decoded
    at the smallest DCT scale (1/2, 1/4, 1/8) that still covers it, which is several times faster.
    Truncated, damaged, empty, non-picture and oversized files raise :class:`UnreadableImage`.
    """
    with _opened(path) as image:
        info = _info(image)
        notes = []
        if min_size and image.format in ("JPEG", "MPO"):
            wanted = min_size if info.orientation < 5 else (min_size[1], min_size[0])
            image.draft(image.mode if image.mode in ("RGB", "L") else None, (max(1, wanted[0]), max(1, wanted[1])))
        try:
            image.load()
        except MemoryError as exc:
            raise UnreadableImage(path, "too big to decode in the memory available") from exc
        except Exception as exc:  # Pillow plugins raise many types on hostile input; each is one bad file
            raise UnreadableImage(path, _decode_reason(exc)) from exc
        if info.animated:
            notes.append("animated: the first frame is used")
        try:
            rgb = _to_rgb(image, notes)
        except MemoryError as exc:
            raise UnreadableImage(path, "too big to decode in the memory available") from exc
        except Exception as exc:
            raise UnreadableImage(path, f"colour mode {image.mode} cannot be turned into RGB ({exc})") from exc
        orientation = _orientation(image)  # a PNG may keep its EXIF after the pixels: known only now
        size = (info.width, info.height) if (orientation >= 5) == (info.orientation >= 5) else (info.height,
                                                                                                 info.width)
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            rgb = rgb.transpose(method)
        return LoadedImage(rgb, size, info.format, notes)


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` with every way of failing turned into :class:`UnreadableImage`; closes the file after."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage(path, "empty file (0 bytes)")
        image = Image.open(path, formats=_readable_formats())
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(path, _too_big(None)) from exc
    except FileNotFoundError as exc:
        raise UnreadableImage(path, "disappeared while being read") from exc
    except PermissionError as exc:
        raise UnreadableImage(path, "cannot be read (permission denied)") from exc
    except Image.UnidentifiedImageError as exc:
        raise UnreadableImage(path, _not_a_picture(path)) from exc
    except MemoryError as exc:
        raise UnreadableImage(path, "too big to decode in the memory available") from exc
    except Exception as exc:
        raise UnreadableImage(path, _decode_reason(exc)) from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise UnreadableImage(path, f"damaged header (size {width}x{height})")
        if width * height > MAX_PIXELS:
            raise UnreadableImage(path, _too_big((width, height)))
        yield image


def _readable_formats() -> list[str]:
    Image.init()
    # MPO (camera JPEGs with a second picture) has no opener of its own: the JPEG opener hands it out.
    return [name for name in READABLE_FORMATS if name in Image.OPEN]


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8), read from the header: ``getexif()`` would decode a whole PNG to look."""
    try:
        if image.format == "TIFF":
            exif = image.getexif()
        else:
            raw = image.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        orientation = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block only costs us the orientation, not the picture
        return 1
    return orientation if orientation in _TRANSPOSE else 1


def _info(image: Image.Image) -> ImageInfo:
    orientation = _orientation(image)
    width, height = image.size
    if orientation >= 5:
        width, height = height, width
    try:  # is_animated looks for a second frame only; n_frames would walk (and trip over) every frame
        animated = bool(getattr(image, "is_animated", False))
    except Exception:
        animated = True
    return ImageInfo(width, height, image.format or "?", image.mode, animated, orientation)


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image.copy()  # the opened image dies with its file; the copy outlives it
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
        return _cmyk_to_rgb(image)
    if mode.startswith("I") or mode == "F":
        notes.append(f"{'16-bit' if mode.startswith('I;16') else 'high bit-depth'} picture reduced to 8 bits")
        return _high_depth_to_l(image).convert("RGB")
    if mode in ("P", "L", "1", "RGB") and "transparency" not in image.info:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] < 255:
        notes.append("transparent areas filled with white")
    flat = Image.new("RGB", rgba.size, WHITE)
    flat.paste(rgba, (0, 0), alpha)
    return flat


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:  # print files carry their ink profile: converting through it keeps the colours the artist saw
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:
            pass
    return image.convert("RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit or 32-bit grey to 8 bits by scaling the range (Pillow's own conversion clips at 255: white pictures)."""
    pixels = np.asarray(image)
    if pixels.dtype.kind == "f":
        top = 1.0 if float(np.nanmax(pixels, initial=0.0)) <= 1.0 else 255.0
        scaled = np.nan_to_num(pixels.astype(np.float64)) * (255.0 / top)
    elif int(pixels.max(initial=0)) > 255:
        scaled = pixels.astype(np.float64) / 257.0
    else:
        scaled = pixels.astype(np.float64)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _decode_reason(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    if "truncated" in message.lower() or isinstance(exc, EOFError):
        return "truncated: the file ends before the picture does (an interrupted download or copy?)"
    return f"damaged picture data ({message[:120]})"


def _too_big(size: tuple[int, int] | None) -> str:
    limit = f"{MAX_PIXELS / 1e6:.0f} megapixels"
    if size is None:
        return f"more than {limit}: too big to open safely (a decompression bomb, or a far larger scan than needed)"
    megapixels = size[0] * size[1] / 1e6
    return (f"{size[0]}x{size[1]} is {megapixels:,.0f} megapixels, over the {limit} limit (a decompression bomb, "
            "or a far larger scan than needed): scale it down first")


def _not_a_picture(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        head = b""
    if head and b"\0" not in head:
        try:
            head.decode("utf-8")
            return f"a text file named {path.suffix}, not a picture"
        except UnicodeDecodeError:
            pass
    return f"not a picture loratui can read (named {path.suffix}, but the content is not PNG, JPEG, WebP or BMP)"


# --- perceptual hash -----------------------------------------------------------------------------


def perceptual_hash(image: Image.Image) -> int | None:
    """A 64-bit DCT hash (pHash): the sign of the 8x8 lowest frequencies against their median.

    Survives resizing, recompression and small colour shifts; a crop or a different shot changes it.
    A picture with almost no structure (one colour, a plain gradient, two blocks) gives None: most of its
    coefficients are zero, their signs are noise, and any two such pictures would look alike.
    """
    import cv2

    grey = np.asarray(image.convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.BOX), dtype=np.float32)
    frequencies = cv2.dct(grey)[:8, :8].flatten()
    detail = np.abs(frequencies[1:])  # the DC term is overall brightness, not structure
    if int((detail > 0.02 * detail.max()).sum()) < _MIN_HASH_DETAIL:
        return None
    bits = frequencies > np.median(frequencies[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy 2
        return np.bitwise_count(values)
    return np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def duplicate_groups(hashes: Sequence[int | None], max_distance: int = DUPLICATE_DISTANCE) -> list[list[int]]:
    """Indices of pictures that are near-copies of each other, grouped transitively (a~b, b~c: one group)."""
    known = [index for index, value in enumerate(hashes) if value is not None]
    if len(known) < 2:
        return []
    values = np.array([hashes[index] for index in known], dtype=np.uint64)
    parent = list(range(len(known)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(known) - 1):
        distances = _popcount(values[i + 1:] ^ values[i])
        for j in np.nonzero(distances <= max_distance)[0]:
            parent[root(i + 1 + int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i, index in enumerate(known):
        groups.setdefault(root(i), []).append(index)
    return [members for members in groups.values() if len(members) > 1]


# --- inspecting ----------------------------------------------------------------------------------

SizeStatus = Literal["ok", "small", "too-small"]
AdviceLevel = Literal["ok", "warn", "info"]


@dataclass
class ImageReport:
    """One readable picture as the Images screen shows it."""

    entry: SourceEntry
    width: int
    height: int
    format: str
    mode: str
    animated: bool
    scale: float  # the usable side (short side; for crop "none" the square root of the area) over the resolution
    hash: int | None = None
    duplicate_group: int | None = None  # index into InspectReport.duplicate_groups
    best_of_group: bool = False

    @property
    def size_status(self) -> SizeStatus:
        return size_status(self.scale)

    @property
    def size_note(self) -> str:
        """``small: 1.8x`` style note, empty when the size is fine."""
        if self.scale >= GOOD_SCALE:
            return ""
        return f"small: {self.scale:.1f}x" + (" !" if self.scale < 1 else "")


@dataclass(frozen=True)
class Advice:
    level: AdviceLevel
    message: str


@dataclass
class InspectReport:
    """Everything the Images step shows about a source folder, computed without writing anything."""

    resolution: int
    crop: str
    images: list[ImageReport]
    broken: list[FileNote]
    excluded: list[SourceEntry]
    duplicate_groups: list[list[ImageReport]]  # each group best first
    advice: list[Advice]

    @property
    def too_small(self) -> list[ImageReport]:
        return [image for image in self.images if image.scale < 1]

    @property
    def small(self) -> list[ImageReport]:
        return [image for image in self.images if 1 <= image.scale < GOOD_SCALE]


def size_status(scale: float) -> SizeStatus:
    if scale < 1:
        return "too-small"
    return "small" if scale < GOOD_SCALE else "ok"


def usable_side(width: int, height: int, crop: str) -> float:
    """The side that will be trained on: a square crop keeps the short side; crop "none" keeps the area."""
    return math.sqrt(width * height) if crop == "none" else float(min(width, height))


def inspect(
    entries: Sequence[SourceEntry],
    resolution: int = 512,
    crop: str = "focal",
    *,
    workers: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> InspectReport:
    """Sizes, too-small pictures, near-duplicate groups, broken files (with reasons) and the article's advice.

    Every picture is decoded once at a small draft (that is how truncated files are caught); nothing is written.
    Excluded entries are listed but not decoded.
    """
    kept = [entry for entry in entries if not entry.excluded]
    excluded = [entry for entry in entries if entry.excluded]
    images: list[ImageReport] = []
    broken: list[FileNote] = []
    total = len(kept)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        # Pillow releases the GIL while decoding, so two threads keep two cores busy.
        results = pool.map(_inspect_one, kept)
        try:
            for done, (entry, result) in enumerate(zip(kept, results, strict=True), start=1):
                if cancel:
                    cancel.check()
                if isinstance(result, UnreadableImage):
                    broken.append(FileNote(entry.path, result.reason))
                else:
                    info, hashed, width, height = result
                    scale = usable_side(width, height, crop) / resolution
                    images.append(ImageReport(entry, width, height, info.format, info.mode, info.animated, scale,
                                              hashed))
                progress(Progress("inspect", done, total, entry.relpath))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # a cancel should not wait for every queued picture
            raise
    groups = _label_duplicates(images)
    return InspectReport(resolution, crop, images, broken, excluded, groups, advise(images, broken, groups))


def inspect_source(
    folder: Path,
    recursive: bool = False,
    exclude: Sequence[str] = (),
    resolution: int = 512,
    crop: str = "focal",
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> InspectReport:
    """:func:`inspect` of a whole source folder: excluded pictures listed, unsupported formats among the broken."""
    entries = scan_source(folder, recursive, exclude, include_excluded=True)
    report = inspect(entries, resolution, crop, progress=progress, cancel=cancel)
    unsupported = unsupported_pictures(folder, recursive, exclude)
    if unsupported:
        report.broken = unsupported + report.broken
        report.advice = advise(report.images, report.broken, report.duplicate_groups)
    return report


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _inspect_one(entry: SourceEntry) -> tuple[ImageInfo, int | None, int, int] | UnreadableImage:
    try:
        info = probe_image(entry.path)
        loaded = load_image(entry.path, min_size=(_HASH_SIDE * 2, _HASH_SIDE * 2))
        return info, perceptual_hash(loaded.image), info.width, info.height
    except UnreadableImage as exc:
        return exc


def _label_duplicates(images: list[ImageReport]) -> list[list[ImageReport]]:
    groups = []
    for members in duplicate_groups([image.hash for image in images]):
        group = sorted((images[i] for i in members), key=lambda im: (-(im.width * im.height), -im.entry.file_size))
        for image in group:
            image.duplicate_group = len(groups)
        group[0].best_of_group = True
        groups.append(group)
    return groups


def group_label(index: int) -> str:
    """A, B, ... Z, AA, AB ...: how the wizard names near-duplicate groups."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def advise(images: list[ImageReport], broken: list[FileNote], groups: list[list[ImageReport]]) -> list[Advice]:
    """The article's checks as short lines: count, sizes, duplicates, unreadable files."""
    count = len(images)
    advice = []
    low, high = IDEAL_IMAGES
    if count < MIN_IMAGES:
        advice.append(Advice("warn", f"only {count} picture{'s' if count != 1 else ''}: {MIN_IMAGES}+ are needed, "
                                     f"{low}-{high} work best"))
    elif count < low:
        advice.append(Advice("info", f"{count} pictures ({MIN_IMAGES}+ needed, {low}-{high} ideal): a few more "
                                     "would help"))
    elif count <= MANY_IMAGES:
        advice.append(Advice("ok", f"{count} pictures ({MIN_IMAGES}+ needed, {low}-{high} ideal)"))
    else:
        advice.append(Advice("info", f"{count} pictures: a big set; use fewer repeats (1-3) and check the steps"))
    too_small = sum(1 for image in images if image.scale < 1)
    small = sum(1 for image in images if 1 <= image.scale < GOOD_SCALE)
    if too_small:
        advice.append(Advice("warn", f"{too_small} below the training size: they will be enlarged and look soft"))
    if small:
        advice.append(Advice("info", f"{small} under {GOOD_SCALE:.0f}x the training size: the guide asks for "
                                     f"{GOOD_SCALE:.0f}x"))
    extra = sum(len(group) - 1 for group in groups)
    if extra:
        advice.append(Advice("warn", f"{extra} near-duplicate{'s' if extra != 1 else ''} in {len(groups)} "
                                     f"group{'s' if len(groups) != 1 else ''}: keep the best of each"))
    if broken:
        advice.append(Advice("warn", f"{len(broken)} unreadable file{'s' if len(broken) != 1 else ''}: "
                                     "they are skipped"))
    if images:
        shorts = [min(image.width, image.height) for image in images]
        advice.append(Advice("info", f"short sides {min(shorts)}-{max(shorts)} px, median "
                                     f"{statistics.median(shorts):.0f} px"))
    advice.append(Advice("info", "clear subject, nothing over the face, varied poses and backgrounds, few near-copies"))
    return advice


def dataset_pictures(folder: Path) -> list[Path]:
    """The prepared pictures of one concept folder, by name (hidden files such as half-written temp files left
    out). The tagger and the tag editor both find a dataset's pictures this way."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
