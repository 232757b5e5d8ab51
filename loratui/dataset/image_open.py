"""Opening any picture file safely as upright RGB: header probes, every colour-mode conversion, readable reasons."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from loratui.errors import LoratuiError

# Formats Pillow may decode for us. Anything else wearing a picture's name (EPS would start Ghostscript, for one)
# is refused rather than handed to a plugin nobody meant to run.
READABLE_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "GIF", "TIFF")
# Twice Pillow's warning threshold (= Pillow's own hard limit): a 13000x13000 scan still opens, a bomb does not.
MAX_PIXELS = 2 * 89_478_485
WHITE = (255, 255, 255)
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
