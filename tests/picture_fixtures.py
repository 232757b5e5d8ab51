"""Pictures made on the fly for the dataset tests: the hostile corpus, a photo-like face, and a source-tree digest."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RED, BLUE, GREEN, WHITE = (220, 30, 40), (30, 60, 220), (40, 180, 60), (255, 255, 255)


@dataclass(frozen=True)
class Expected:
    """What prepare must do with one file: skip it with ``reason`` in the message, or prepare it."""

    reason: str = ""  # part of the skip message; empty = prepared
    colour: tuple[int, int, int] | None = None  # colour at the centre of the prepared picture
    warning: str = ""  # part of a warning about the file


def write_png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> None:
    """A PNG written by hand: for what Pillow cannot save (16-bit RGB) and for headers that lie (bombs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + (chunk(b"IDAT", zlib.compress(raw_rows)) if raw_rows else b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))


def build_hostile_corpus(folder: Path, side: int = 160) -> dict[str, Expected]:
    """Every kind of file users bring, in ``folder``; returns file name -> what prepare must do with it."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Expected] = {}

    def solid(colour, size=(side, side), mode="RGB") -> Image.Image:
        return Image.new(mode, size, colour)

    jpeg = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(jpeg, "JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    expected["truncated.jpg"] = Expected(reason="truncated")

    (folder / "zero bytes.png").write_bytes(b"")
    expected["zero bytes.png"] = Expected(reason="empty file")

    (folder / "notes.png").write_text("this is not a picture\n", encoding="utf-8")
    expected["notes.png"] = Expected(reason="text file")

    solid((0, 255, 255, 0), mode="CMYK").save(folder / "cmyk.jpg", "JPEG", quality=95)  # cyan 0 + magenta + yellow
    expected["cmyk.jpg"] = Expected(colour=(255, 0, 0))

    ramp = np.tile(np.linspace(0, 65535, side, dtype=np.uint16), (side, 1))
    Image.fromarray(ramp).save(folder / "grey16.png")  # Pillow mode I;16
    expected["grey16.png"] = Expected(colour=(128, 128, 128))

    rgb16 = np.zeros((side, side, 3), dtype=">u2")
    rgb16[..., 1] = 40000  # 16-bit green at 61 %
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb16)
    write_png(folder / "rgb16.png", side, side, 16, 2, rows)
    expected["rgb16.png"] = Expected(colour=(0, 155, 0))

    palette = Image.new("P", (side, side), 0)
    palette.putpalette([*RED, *BLUE] + [0] * 762)
    ImageDraw.Draw(palette).rectangle((side // 4, side // 4, side * 3 // 4, side * 3 // 4), fill=1)
    palette.save(folder / "palette.png", transparency=0)  # red everywhere but transparent; blue square in the middle
    expected["palette.png"] = Expected(colour=BLUE)

    rgba = Image.new("RGBA", (side, side), (*RED, 0))  # invisible red: must become white
    rgba.save(folder / "transparent.png")
    expected["transparent.png"] = Expected(colour=WHITE)

    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers rotate it 90 degrees clockwise
    rotated = Image.new("RGB", (side * 2, side), BLUE)
    ImageDraw.Draw(rotated).rectangle((0, 0, side - 1, side - 1), fill=RED)  # left half of the stored picture
    rotated.save(folder / "rotated.jpg", "JPEG", quality=95, exif=exif.tobytes())
    expected["rotated.jpg"] = Expected(colour=RED)  # upright it is tall, red on top: a centre crop is the seam

    frames = [solid(colour).convert("P", palette=Image.Palette.ADAPTIVE) for colour in (RED, BLUE)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    expected["animated.gif"] = Expected(colour=RED, warning="animated")

    solid(GREEN, size=(1, 1)).save(folder / "one pixel.png")
    expected["one pixel.png"] = Expected(reason="too small")

    write_png(folder / "bomb.png", 100_000, 100_000, 8, 2, b"")
    expected["bomb.png"] = Expected(reason="megapixels")

    solid(GREEN).save(folder / "SHOUTING.JPG", "JPEG", quality=95)
    expected["SHOUTING.JPG"] = Expected(colour=GREEN)

    solid(BLUE).save(folder / "写真 アカリ é.png")
    expected["写真 アカリ é.png"] = Expected(colour=BLUE)

    solid(RED).save(folder / "really a jpeg.png", "JPEG", quality=95)
    expected["really a jpeg.png"] = Expected(colour=RED)

    solid(GREEN).save(folder / "gbk caption.png")
    (folder / "gbk caption.txt").write_bytes("红发, 蓝眼睛, smile".encode("gbk"))
    expected["gbk caption.png"] = Expected(colour=GREEN)

    solid(BLUE).save(folder / "bom caption.webp", "WEBP", lossless=True)
    (folder / "bom caption.caption").write_bytes("\ufeffblue background,  solo , Solo\nsecond line".encode())
    expected["bom caption.webp"] = Expected(colour=BLUE)

    solid(RED).save(folder / "empty caption.bmp")
    (folder / "empty caption.txt").write_bytes(b"")
    expected["empty caption.bmp"] = Expected(colour=RED, warning="empty caption")

    solid(RED).save(folder / ".hidden.png")  # never listed
    (folder / "readme.md").write_text("not a picture, not listed\n", encoding="utf-8")
    return expected


def draw_photo_face(width: int, height: int, face: tuple[int, int, int], seed: int = 0) -> Image.Image:
    """A photo-like picture: blurred noise, a person with a shaded face at ``face`` = (centre x, centre y, radius).

    OpenCV's Haar cascades find this face; animeface does not (it is no drawing).
    """
    cx, cy, r = face
    rng = np.random.default_rng(seed)
    noise = rng.normal(120, 25, (height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(6))
    draw = ImageDraw.Draw(image)
    draw.ellipse((cx - r * 1.1, cy - r * 1.45, cx + r * 1.1, cy + r * 0.6), fill=(60, 40, 30))
    draw.ellipse((cx - r, cy - r * 1.25, cx + r, cy + r * 1.25), fill=(224, 180, 150))
    for side in (-1, 1):
        ex, ey = cx + side * r * 0.4, cy - r * 0.2
        draw.ellipse((ex - r * 0.2, ey - r * 0.09, ex + r * 0.2, ey + r * 0.09), fill=(240, 240, 240))
        draw.ellipse((ex - r * 0.08, ey - r * 0.08, ex + r * 0.08, ey + r * 0.08), fill=(50, 35, 25))
        draw.line((ex - r * 0.25, ey - r * 0.25, ex + r * 0.22, ey - r * 0.28), fill=(70, 50, 40),
                  width=max(2, int(r * 0.06)))
    draw.polygon([(cx, cy - r * 0.05), (cx - r * 0.12, cy + r * 0.35), (cx + r * 0.12, cy + r * 0.35)],
                 fill=(200, 150, 125))
    draw.ellipse((cx - r * 0.32, cy + r * 0.55, cx + r * 0.32, cy + r * 0.72), fill=(170, 80, 80))
    draw.rectangle((cx - r * 2, cy + r * 1.6, cx + r * 2, height), fill=(40, 70, 140))
    return image.filter(ImageFilter.GaussianBlur(2))


def tree_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: relative path -> (sha256, mtime_ns). Equal digests = nothing touched."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest[path.relative_to(folder).as_posix()] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                           path.stat().st_mtime_ns)
    return digest


def centre_colour(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return rgb.getpixel((rgb.width // 2, rgb.height // 2))


def close(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))
