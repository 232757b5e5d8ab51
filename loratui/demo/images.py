"""Synthetic demo pictures: one made-up anime character drawn with Pillow in varied shots, sizes and backgrounds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

BackgroundKind = Literal["white", "gradient", "outdoor", "night", "noise"]
Framing = Literal["bust", "cowboy", "full"]
Placement = Literal["centre", "top", "left", "right"]
ImageFormat = Literal["PNG", "JPEG", "WEBP"]
ArmPose = Literal["down", "wave"]
RGB = tuple[int, int, int]
Point = tuple[float, float]
Box = tuple[int, int, int, int]

# Drawing at 2x then box-reducing is the cheapest way to anti-alias ImageDraw shapes.
_SUPERSAMPLE = 2
_JPEG_QUALITY = 92
_WEBP_QUALITY = 90


@dataclass(frozen=True)
class Palette:
    """The character's fixed colours (RGB), identical in every picture so a LoRA can learn them."""

    hair: RGB
    hair_shadow: RGB
    skin: RGB
    skin_shadow: RGB
    blush: RGB
    eye_white: RGB
    iris: RGB
    iris_dark: RGB
    pupil: RGB
    lash: RGB
    mouth: RGB
    shirt: RGB
    ribbon: RGB
    skirt: RGB
    sock: RGB
    shoe: RGB
    star_clip: RGB
    outline: RGB


CHARACTER = Palette(
    hair=(214, 40, 58),
    hair_shadow=(158, 24, 44),
    skin=(255, 226, 206),
    skin_shadow=(238, 196, 178),
    blush=(255, 186, 186),
    eye_white=(255, 255, 255),
    iris=(48, 112, 232),
    iris_dark=(24, 58, 150),
    pupil=(16, 24, 64),
    lash=(52, 22, 30),
    mouth=(196, 62, 78),
    shirt=(255, 206, 40),
    ribbon=(40, 92, 210),
    skirt=(58, 70, 132),
    sock=(250, 250, 250),
    shoe=(96, 52, 36),
    star_clip=(255, 236, 90),
    outline=(64, 28, 36),
)

# Character geometry is in "face units": 1.0 = face width, origin at the face centre, y down.
_FACE_OVAL_HALF_WIDTH, _FACE_OVAL_TOP, _FACE_OVAL_BOTTOM, _CHIN = 0.5, -0.6, 0.5, 0.68
# Ground-truth face box: the visible face, from just above the bang tips to the chin, between the side locks.
_FACE_LEFT, _FACE_TOP, _FACE_RIGHT, _FACE_BOTTOM = -0.45, -0.32, 0.45, _CHIN
_LAYER_LEFT, _LAYER_TOP, _LAYER_RIGHT, _LAYER_BOTTOM = -1.45, -1.4, 1.45, 4.6
_HEAD_HALF_WIDTH = 0.72
_SHOULDER_HALF_WIDTH = 1.0
# Lowest visible point, in face units, for each framing; the rest of the body runs off the bottom edge.
_FRAMING_BOTTOM: dict[Framing, float] = {"bust": 1.85, "cowboy": 2.95, "full": 4.45}
_TOP_OF_HEAD = -1.32


@dataclass(frozen=True)
class DemoImage:
    """One generated picture and its ground truth, in pixels of the saved file."""

    path: Path
    width: int
    height: int
    format: ImageFormat
    background: BackgroundKind
    framing: Framing
    face_box: Box
    character_box: Box
    face_off_centre: bool
    mirrored: bool
    arm_pose: ArmPose


@dataclass(frozen=True)
class _Shot:
    width: int
    height: int
    format: ImageFormat
    background: BackgroundKind
    framing: Framing
    placement: Placement


# Fixed list so the default set always covers every aspect ratio, format and background;
# seeds only jitter positions, scales, poses and textures.
_SHOTS: tuple[_Shot, ...] = (
    _Shot(512, 768, "PNG", "white", "bust", "centre"),
    _Shot(768, 1152, "PNG", "outdoor", "full", "centre"),
    _Shot(1024, 1536, "JPEG", "night", "cowboy", "centre"),
    _Shot(576, 1024, "PNG", "gradient", "bust", "top"),
    _Shot(864, 1536, "PNG", "outdoor", "cowboy", "top"),
    _Shot(1152, 768, "PNG", "white", "cowboy", "centre"),
    _Shot(1536, 1024, "JPEG", "outdoor", "full", "left"),
    _Shot(1536, 864, "PNG", "gradient", "bust", "right"),
    _Shot(1024, 576, "WEBP", "night", "full", "centre"),
    _Shot(1024, 1024, "JPEG", "noise", "bust", "centre"),
    _Shot(512, 512, "PNG", "white", "bust", "centre"),
    _Shot(384, 576, "PNG", "gradient", "bust", "centre"),
    _Shot(448, 448, "WEBP", "outdoor", "cowboy", "centre"),
    _Shot(640, 960, "JPEG", "noise", "cowboy", "centre"),
    _Shot(960, 640, "PNG", "white", "bust", "left"),
    _Shot(720, 1280, "PNG", "night", "bust", "top"),
    _Shot(1280, 720, "PNG", "outdoor", "cowboy", "right"),
    _Shot(896, 1152, "PNG", "gradient", "cowboy", "centre"),
    _Shot(1200, 900, "JPEG", "noise", "bust", "centre"),
    _Shot(768, 768, "PNG", "gradient", "full", "centre"),
    _Shot(1344, 768, "PNG", "white", "full", "centre"),
    _Shot(832, 1216, "PNG", "outdoor", "bust", "centre"),
    _Shot(1216, 1216, "JPEG", "night", "cowboy", "centre"),
    _Shot(600, 800, "PNG", "white", "cowboy", "centre"),
)

_EXTENSIONS: dict[ImageFormat, str] = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def build_demo_images(out_dir: Path, count: int = 24, seed: int = 0) -> list[DemoImage]:
    """Draw `count` pictures of the demo character into out_dir as demo_001.png, demo_002.jpg, ...

    The same seed gives byte-identical files. Beyond the built-in shot list the shots repeat with fresh jitter.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_build_one(out_dir, index, seed) for index in range(count)]


def centre_square_crop(width: int, height: int) -> Box:
    """The box a naive centre crop to a square of side min(width, height) keeps."""
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return (left, top, left + side, top + side)


def box_inside(inner: Box, outer: Box) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _build_one(out_dir: Path, index: int, seed: int) -> DemoImage:
    shot = _SHOTS[index % len(_SHOTS)]
    # One generator per picture, keyed by (seed, index): changing `count` never alters earlier pictures.
    rng = np.random.default_rng([seed, index])
    canvas = _draw_background(shot.background, shot.width, shot.height, rng)

    face_px = _face_size(shot, rng)
    centre_x, centre_y = _face_centre(shot, face_px, rng)
    mirrored = bool(rng.random() < 0.5)
    arm_pose: ArmPose = "wave" if rng.random() < 0.4 else "down"

    layer, anchor = _draw_character(face_px, arm_pose, mirrored)
    offset = (centre_x - anchor[0], centre_y - anchor[1])
    canvas.paste(layer, offset, layer)

    face_box = _face_box(centre_x, centre_y, face_px)
    character_box = _clip_box(_alpha_box(layer, offset), shot.width, shot.height)
    path = out_dir / f"demo_{index + 1:03d}.{_EXTENSIONS[shot.format]}"
    _save(canvas, path, shot.format)
    return DemoImage(
        path=path,
        width=shot.width,
        height=shot.height,
        format=shot.format,
        background=shot.background,
        framing=shot.framing,
        face_box=face_box,
        character_box=character_box,
        face_off_centre=not box_inside(face_box, centre_square_crop(shot.width, shot.height)),
        mirrored=mirrored,
        arm_pose=arm_pose,
    )


def _save(image: Image.Image, path: Path, image_format: ImageFormat) -> None:
    if image_format == "JPEG":
        image.save(path, "JPEG", quality=_JPEG_QUALITY)
    elif image_format == "WEBP":
        image.save(path, "WEBP", quality=_WEBP_QUALITY, method=4)
    else:
        image.save(path, "PNG")


# --- placement -------------------------------------------------------------------------------


def _face_size(shot: _Shot, rng: np.random.Generator) -> int:
    """Face width in pixels: the framing's visible body fills most of the height, the head always fits across."""
    visible = _FRAMING_BOTTOM[shot.framing] - _TOP_OF_HEAD
    fill = rng.uniform(0.82, 0.94)
    by_height = fill * shot.height / visible
    by_width = 0.55 * shot.width / _HEAD_HALF_WIDTH / 2
    return max(24, int(min(by_height, by_width)))


def _face_centre(shot: _Shot, face_px: int, rng: np.random.Generator) -> tuple[int, int]:
    w, h = shot.width, shot.height
    head_margin = math.ceil(_HEAD_HALF_WIDTH * face_px) + 2
    # Side shots keep the hair and shoulders in frame but push the face out of a centre square crop.
    side_margin = math.ceil(_SHOULDER_HALF_WIDTH * face_px)
    if shot.placement == "left":
        x = side_margin + rng.uniform(0.0, 0.03) * w
    elif shot.placement == "right":
        x = w - side_margin - rng.uniform(0.0, 0.03) * w
    else:
        x = w / 2 + rng.uniform(-0.06, 0.06) * w

    head_top = -_TOP_OF_HEAD * face_px
    face_top = -_FACE_TOP * face_px
    if shot.placement == "top":
        # Snapshot-style framing: the top of the hair is cut off and the face sits against the top edge,
        # above the square a centre crop of a tall picture keeps.
        y = face_top + rng.uniform(0.02, 0.05) * h
    elif shot.framing == "full":
        body = (_FRAMING_BOTTOM["full"] - _TOP_OF_HEAD) * face_px
        y = head_top + max(0.0, h - body) * rng.uniform(0.3, 0.7)
    else:
        y = head_top + rng.uniform(0.02, 0.06) * h

    x = min(max(x, head_margin), w - head_margin)
    y = min(max(y, face_top + 1), h - _FACE_BOTTOM * face_px - 2)
    return int(round(x)), int(round(y))


def _face_box(centre_x: int, centre_y: int, face_px: int) -> Box:
    return (
        math.floor(centre_x + _FACE_LEFT * face_px),
        math.floor(centre_y + _FACE_TOP * face_px),
        math.ceil(centre_x + _FACE_RIGHT * face_px),
        math.ceil(centre_y + _FACE_BOTTOM * face_px),
    )


def _alpha_box(layer: Image.Image, offset: tuple[int, int]) -> Box:
    left, top, right, bottom = layer.getchannel("A").getbbox() or (0, 0, 0, 0)
    return (left + offset[0], top + offset[1], right + offset[0], bottom + offset[1])


def _clip_box(box: Box, width: int, height: int) -> Box:
    return (max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3]))


# --- backgrounds -----------------------------------------------------------------------------


def _draw_background(kind: BackgroundKind, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    if kind == "white":
        return Image.new("RGB", (width, height), (255, 255, 255))
    if kind == "gradient":
        return _gradient_background(width, height, rng)
    if kind == "outdoor":
        return _outdoor_background(width, height, rng)
    if kind == "night":
        return _night_background(width, height, rng)
    return _noise_background(width, height, rng)


# Pastel pinks, lilacs, peach and mint: a plain backdrop that the demo tagger reads as neither sky, grass, night
# nor the character's red and yellow.
_GRADIENT_PAIRS: tuple[tuple[RGB, RGB], ...] = (
    ((255, 214, 232), (222, 208, 250)),
    ((255, 226, 206), (236, 210, 246)),
    ((216, 244, 224), (230, 214, 250)),
    ((250, 222, 240), (255, 236, 212)),
)


def _lerp_image(top: RGB, bottom: RGB, t: np.ndarray) -> np.ndarray:
    start = np.asarray(top, dtype=np.float32)
    end = np.asarray(bottom, dtype=np.float32)
    return start + (end - start) * t[..., None]


def _gradient_background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    top, bottom = _GRADIENT_PAIRS[int(rng.integers(len(_GRADIENT_PAIRS)))]
    angle = rng.uniform(0.0, math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = xs * math.cos(angle) / width + ys * math.sin(angle) / height
    t = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    return Image.fromarray(_to_uint8(_lerp_image(top, bottom, t)), "RGB")


def _outdoor_background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    horizon = int(height * rng.uniform(0.58, 0.72))
    rows = np.arange(height, dtype=np.float32)[:, None]
    sky = _lerp_image((86, 156, 236), (196, 228, 252), rows[:horizon] / max(horizon, 1))
    grass_rows = rows[horizon:] - horizon
    grass = _lerp_image((112, 184, 82), (60, 138, 48), grass_rows / max(height - horizon, 1))
    texture = _smooth_noise(width, height - horizon, 24, rng)[..., None] * 18.0
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:horizon] = _to_uint8(sky)
    pixels[horizon:] = _to_uint8(grass + texture)
    image = Image.fromarray(pixels, "RGB")

    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        _cloud(draw, rng.uniform(0, width), rng.uniform(0.05, 0.4) * horizon, rng.uniform(0.06, 0.12) * width, rng)
    return image


def _cloud(draw: ImageDraw.ImageDraw, x: float, y: float, size: float, rng: np.random.Generator) -> None:
    for dx, dy, r in ((0.0, 0.0, 0.5), (-0.45, 0.12, 0.36), (0.45, 0.12, 0.38), (0.2, -0.2, 0.34)):
        radius = size * r * rng.uniform(0.9, 1.1)
        cx, cy = x + dx * size, y + dy * size
        draw.ellipse((cx - radius, cy - radius * 0.8, cx + radius, cy + radius * 0.8), fill=(250, 252, 255))


def _night_background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    rows = np.arange(height, dtype=np.float32)[:, None]
    column = _to_uint8(_lerp_image((8, 12, 38), (34, 34, 76), rows / max(height - 1, 1)))
    image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(column, (height, width, 3))), "RGB")
    draw = ImageDraw.Draw(image)

    moon_r = 0.07 * min(width, height)
    moon_x = width * (0.12 if rng.random() < 0.5 else 0.88)
    moon_y = height * 0.1 + moon_r
    draw.ellipse((moon_x - moon_r, moon_y - moon_r, moon_x + moon_r, moon_y + moon_r), fill=(250, 244, 200))

    star_count = int(width * height / 9000)
    xs, ys = rng.uniform(0, width, star_count), rng.uniform(0, height, star_count)
    for x, y, size in zip(xs, ys, rng.uniform(1.0, 3.5, star_count), strict=True):
        if size > 3.0:
            draw.polygon(_star_points(x, y, size * 2.2, size * 0.9), fill=(255, 246, 190))
        else:
            draw.ellipse((x - size / 2, y - size / 2, x + size / 2, y + size / 2), fill=(230, 232, 255))
    return image


def _noise_background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    blobs = _smooth_noise(width, height, 6, rng)
    base = _lerp_image((150, 160, 172), (96, 120, 138), (blobs + 1.0) / 2.0)
    grain = rng.normal(0.0, 9.0, size=(height, width, 1)).astype(np.float32)
    return Image.fromarray(_to_uint8(base + grain), "RGB")


def _smooth_noise(width: int, height: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Value noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    grid_w = max(2, cells * width // max(width, height))
    grid_h = max(2, cells * height // max(width, height))
    grid = rng.uniform(0.0, 255.0, size=(grid_h, grid_w)).astype(np.float32)
    coarse = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(coarse, dtype=np.float32) / 127.5 - 1.0


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _star_points(x: float, y: float, outer: float, inner: float) -> list[Point]:
    points = []
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((x + radius * math.cos(angle), y + radius * math.sin(angle)))
    return points


# --- the character ---------------------------------------------------------------------------


class _Pen:
    """Maps face units to supersampled layer pixels so the drawing code reads like the design sheet."""

    def __init__(self, draw: ImageDraw.ImageDraw, scale: float, origin: Point) -> None:
        self.draw = draw
        self.scale = scale
        self.origin = origin
        self.line_width = max(1, round(0.022 * scale))

    def pt(self, x: float, y: float) -> Point:
        return (self.origin[0] + x * self.scale, self.origin[1] + y * self.scale)

    def polygon(self, points: list[Point], fill: RGB, outline: bool = True) -> None:
        pixels = [self.pt(x, y) for x, y in points]
        self.draw.polygon(pixels, fill=fill, outline=CHARACTER.outline if outline else None,
                          width=self.line_width if outline else 1)

    def ellipse(self, left: float, top: float, right: float, bottom: float, fill: RGB, outline: bool = True) -> None:
        self.draw.ellipse((*self.pt(left, top), *self.pt(right, bottom)), fill=fill,
                          outline=CHARACTER.outline if outline else None, width=self.line_width)

    def limb(self, points: list[Point], thickness: float, fill: RGB) -> None:
        # A thick polyline over a slightly thicker dark one gives an outlined limb in two calls.
        pixels = [self.pt(x, y) for x, y in points]
        width = max(1, round(thickness * self.scale))
        self.draw.line(pixels, fill=CHARACTER.outline, width=width + 2 * self.line_width, joint="curve")
        self.draw.line(pixels, fill=fill, width=width, joint="curve")
        for x, y in (pixels[0], pixels[-1]):
            r = width / 2
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _draw_character(face_px: int, arm_pose: ArmPose, mirrored: bool) -> tuple[Image.Image, tuple[int, int]]:
    """The character on a transparent layer, plus the layer pixel that is the face centre."""
    width = math.ceil((_LAYER_RIGHT - _LAYER_LEFT) * face_px)
    height = math.ceil((_LAYER_BOTTOM - _LAYER_TOP) * face_px)
    anchor = (round(-_LAYER_LEFT * face_px), round(-_LAYER_TOP * face_px))
    if mirrored:
        anchor = (width - anchor[0], anchor[1])

    big = Image.new("RGBA", (width * _SUPERSAMPLE, height * _SUPERSAMPLE), (0, 0, 0, 0))
    origin = (anchor[0] * _SUPERSAMPLE, anchor[1] * _SUPERSAMPLE)
    pen = _Pen(ImageDraw.Draw(big), face_px * _SUPERSAMPLE, origin)
    # Mirroring the drawing (not the pixels) keeps the face centre exactly on the anchor.
    sign = -1.0 if mirrored else 1.0
    _draw_figure(pen, arm_pose, sign)
    return big.reduce(_SUPERSAMPLE), anchor


def _mirror(points: list[Point], sign: float) -> list[Point]:
    return [(sign * x, y) for x, y in points]


def _draw_figure(pen: _Pen, arm_pose: ArmPose, sign: float) -> None:
    c = CHARACTER
    _draw_back_hair(pen, sign)
    _draw_legs(pen)
    pen.polygon([(-0.52, 2.2), (0.52, 2.2), (0.86, 3.02), (-0.86, 3.02)], c.skirt)
    for x in (-0.4, -0.13, 0.13, 0.4):
        pen.draw.line([pen.pt(x * 0.95, 2.3), pen.pt(x * 1.5, 2.98)], fill=c.outline, width=pen.line_width)
    pen.polygon([(-0.13, 0.42), (0.13, 0.42), (0.14, 1.05), (-0.14, 1.05)], c.skin)
    _draw_torso(pen)
    _draw_arms(pen, arm_pose, sign)
    _draw_face(pen)
    _draw_front_hair(pen, sign)


def _draw_back_hair(pen: _Pen, sign: float) -> None:
    c = CHARACTER
    pen.polygon(_mirror([(-0.68, -0.45), (-0.86, 0.7), (-0.98, 1.9), (-0.8, 2.55), (-0.55, 2.3), (-0.3, 2.5),
                         (0.3, 2.5), (0.55, 2.3), (0.8, 2.55), (0.98, 1.9), (0.86, 0.7), (0.68, -0.45)], sign),
                c.hair_shadow)
    pen.ellipse(-_HEAD_HALF_WIDTH, -1.08, _HEAD_HALF_WIDTH, 0.3, c.hair)


def _draw_legs(pen: _Pen) -> None:
    c = CHARACTER
    for x in (-0.24, 0.24):
        pen.limb([(x, 2.9), (x * 1.05, 4.25)], 0.2, c.skin)
        pen.limb([(x * 1.05, 3.8), (x * 1.05, 4.25)], 0.21, c.sock)
        pen.ellipse(x * 1.1 - 0.17, 4.24, x * 1.1 + 0.17, 4.45, c.shoe)


def _draw_torso(pen: _Pen) -> None:
    c = CHARACTER
    pen.polygon([(-0.22, 0.95), (-0.66, 1.06), (-0.74, 1.4), (-0.54, 1.45), (-0.5, 2.3),
                 (0.5, 2.3), (0.54, 1.45), (0.74, 1.4), (0.66, 1.06), (0.22, 0.95)], c.shirt)
    pen.polygon([(-0.16, 0.96), (0.16, 0.96), (0.0, 1.22)], c.skin)
    pen.polygon([(0.0, 1.2), (-0.24, 1.08), (-0.22, 1.36)], c.ribbon)
    pen.polygon([(0.0, 1.2), (0.24, 1.08), (0.22, 1.36)], c.ribbon)
    pen.ellipse(-0.06, 1.14, 0.06, 1.26, c.ribbon)


def _draw_arms(pen: _Pen, arm_pose: ArmPose, sign: float) -> None:
    c = CHARACTER
    left = [(-0.62, 1.3), (-0.76, 1.8), (-0.8, 2.3)]
    right = [(0.62, 1.3), (0.76, 1.8), (0.8, 2.3)]
    if arm_pose == "wave":
        right = [(0.62, 1.3), (1.02, 1.0), (1.1, 0.38)]
    for arm in (_mirror(left, sign), _mirror(right, sign)):
        pen.limb(arm, 0.17, c.skin)
        sleeve_end = (arm[0][0] + (arm[1][0] - arm[0][0]) * 0.45, arm[0][1] + (arm[1][1] - arm[0][1]) * 0.45)
        pen.limb([(arm[0][0], arm[0][1] - 0.12), sleeve_end], 0.27, c.shirt)


def _draw_face(pen: _Pen) -> None:
    c = CHARACTER
    oval = (-_FACE_OVAL_HALF_WIDTH, _FACE_OVAL_TOP, _FACE_OVAL_HALF_WIDTH, _FACE_OVAL_BOTTOM)
    pen.polygon([(-0.46, 0.15), (0.46, 0.15), (0.12, 0.62), (0.0, _CHIN), (-0.12, 0.62)], c.skin)
    pen.ellipse(*oval, c.skin, outline=False)
    pen.draw.arc((*pen.pt(oval[0], oval[1]), *pen.pt(oval[2], oval[3])), 0, 180, fill=c.outline,
                 width=pen.line_width)
    for side in (-1.0, 1.0):
        pen.ellipse(side * 0.3 - 0.08, 0.28, side * 0.3 + 0.08, 0.36, c.blush, outline=False)
        _draw_eye(pen, side)
    pen.draw.chord((*pen.pt(-0.09, 0.3), *pen.pt(0.09, 0.46)), 0, 180, fill=c.mouth, outline=c.outline,
                   width=pen.line_width)


def _draw_eye(pen: _Pen, side: float) -> None:
    c = CHARACTER
    inner, outer = side * 0.09, side * 0.37
    left, right = min(inner, outer), max(inner, outer)
    pen.ellipse(left, -0.1, right, 0.24, c.eye_white)
    middle = (left + right) / 2
    pen.ellipse(middle - 0.1, -0.08, middle + 0.1, 0.24, c.iris, outline=False)
    pen.ellipse(middle - 0.1, -0.08, middle + 0.1, 0.06, c.iris_dark, outline=False)
    pen.ellipse(middle - 0.05, 0.0, middle + 0.05, 0.16, c.pupil, outline=False)
    pen.ellipse(middle - 0.07, -0.04, middle - 0.01, 0.03, c.eye_white, outline=False)
    pen.polygon([(inner, -0.08), (inner + side * 0.04, -0.14), (outer, -0.12), (outer + side * 0.03, -0.05),
                 (outer - side * 0.02, -0.07), (inner, -0.05)], c.lash, outline=False)


def _draw_front_hair(pen: _Pen, sign: float) -> None:
    c = CHARACTER
    bangs: list[Point] = [(-0.7, -0.05), (-0.7, -0.6), (-0.45, -0.95), (0.0, -1.06), (0.45, -0.95),
                          (0.7, -0.6), (0.7, -0.05)]
    tips = [0.56, 0.36, 0.14, -0.1, -0.32, -0.54]
    for i, x in enumerate(tips):
        bangs.append((x, -0.2 if i % 2 == 0 else -0.26))
        bangs.append((x - 0.1, -0.46))
    bangs.append((-0.68, -0.42))
    pen.polygon(_mirror(bangs, sign), c.hair)
    for side in (-1.0, 1.0):
        lock = [(side * 0.7, -0.45), (side * 0.44, -0.35), (side * 0.42, 0.45), (side * 0.5, 0.98),
                (side * 0.6, 0.82), (side * 0.74, 0.2)]
        pen.polygon(lock, c.hair)
    pen.polygon(_mirror([(0.04, -1.02), (0.12, -1.3), (0.34, -1.34), (0.2, -1.24), (0.14, -1.02)], sign), c.hair)
    star = _star_points(*pen.pt(sign * 0.5, -0.72), 0.11 * pen.scale, 0.05 * pen.scale)
    pen.draw.polygon(star, fill=c.star_clip, outline=c.outline, width=pen.line_width)
