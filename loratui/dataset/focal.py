"""Where a picture's subject is: anime faces (animeface), photo faces (OpenCV Haar), corners and saliency, weighted."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Literal

import numpy as np
from PIL import Image

FocalMethod = Literal["face-anime", "face-photo", "saliency", "centre"]
FOCAL_METHODS: tuple[FocalMethod, ...] = ("face-anime", "face-photo", "saliency", "centre")
FloatBox = tuple[float, float, float, float]

# Detection runs on a copy this long: animeface needs faces of 43+ px, so a bust or cowboy shot of a character
# still shows its face; a 6000 px photo would cost seconds at full size and find nothing more.
ANALYSIS_SIDE = 512
# A1111 autocrop's Haar cascades, in its order; the first with any hit wins. Sizes are fractions of the short side.
HAAR_CASCADES: tuple[tuple[str, float], ...] = (
    ("haarcascade_eye.xml", 0.01),
    ("haarcascade_frontalface_default.xml", 0.05),
    ("haarcascade_profileface.xml", 0.05),
    ("haarcascade_frontalface_alt.xml", 0.05),
    ("haarcascade_frontalface_alt2.xml", 0.05),
    ("haarcascade_frontalface_alt_tree.xml", 0.05),
    ("haarcascade_eye_tree_eyeglasses.xml", 0.01),
    ("haarcascade_upperbody.xml", 0.05),
)
ANIME_MIN_LIKELIHOOD = 0.7
# Watermarks and signatures sit at the bottom edge; A1111 greys out the bottom tenth before looking for corners.
WATERMARK_BAND = 0.1
_SALIENCY_SIDE = 64
# The animeface wheel reads Pillow's internal image struct as laid out in Pillow 4.2, the headers it was built
# with. Newer Pillow moved the fields, and the wheel then silently sees an empty picture (no face, ever); these
# versions get the picture through a struct of that old layout instead.
_ANIMEFACE_LEGACY_LAYOUT = frozenset({"2.0.3"})


@dataclass(frozen=True)
class Weights:
    """How much each kind of point pulls the crop (A1111's defaults: face 0.9, edges 0.5, entropy 0.15-0.3)."""

    face: float = 0.9
    edges: float = 0.5
    saliency: float = 0.3


@dataclass(frozen=True)
class Face:
    box: FloatBox
    score: float
    kind: Literal["anime", "photo"]

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


@dataclass(frozen=True)
class Focus:
    """The point a focal crop centres on, how it was found, and the face boxes the crop should keep whole.

    Coordinates are pixels of the picture given to :func:`find_focus`; :meth:`scaled` converts them.
    """

    point: tuple[float, float]
    method: FocalMethod
    faces: tuple[FloatBox, ...] = ()
    subject_top: float | None = None  # upper edge of the detail found: a tall crop keeps it (the head, usually)
    points: dict[str, tuple[float, float]] = field(default_factory=dict)  # each kind's centroid, for a debug view

    def scaled(self, factor: float) -> Focus:
        def box(b: FloatBox) -> FloatBox:
            return (b[0] * factor, b[1] * factor, b[2] * factor, b[3] * factor)

        return replace(
            self,
            point=(self.point[0] * factor, self.point[1] * factor),
            faces=tuple(box(b) for b in self.faces),
            subject_top=None if self.subject_top is None else self.subject_top * factor,
            points={kind: (x * factor, y * factor) for kind, (x, y) in self.points.items()},
        )


@dataclass(frozen=True)
class Detectors:
    """Which point finders run (tests switch the face detectors off to check the fallbacks alone)."""

    anime_faces: bool = True
    photo_faces: bool = True
    edges: bool = True
    saliency: bool = True


ALL_DETECTORS = Detectors()


def find_focus(image: Image.Image, detectors: Detectors = ALL_DETECTORS, weights: Weights = Weights()) -> Focus:
    """Weighted centre of the points of interest of an RGB picture (A1111's autocrop, plus anime faces).

    Faces: animeface first (drawn faces), then the Haar cascades (photos). Corners (goodFeaturesToTrack with the
    watermark guard) and a spectral-residual saliency point always add their pull. No point at all: the centre.
    """
    width, height = image.size
    factor = min(1.0, ANALYSIS_SIDE / max(width, height))
    small = image if factor == 1.0 else image.resize(
        (max(1, round(width * factor)), max(1, round(height * factor))), Image.Resampling.BILINEAR, reducing_gap=2.0)
    rgb = np.asarray(small if small.mode == "RGB" else small.convert("RGB"))
    grey = np.asarray(small.convert("L"))

    faces: list[Face] = []
    if detectors.anime_faces:
        faces = anime_faces(rgb)
    if not faces and detectors.photo_faces:
        faces = photo_faces(grey)
    corners = corner_points(grey) if detectors.edges else np.empty((0, 2))
    salient = saliency_point(grey) if detectors.saliency else None

    centroids: dict[str, tuple[float, float]] = {}
    pulls: list[tuple[float, tuple[float, float]]] = []
    if faces:
        total = sum(face.area for face in faces)
        centroids["face"] = (sum((f.box[0] + f.box[2]) / 2 * f.area for f in faces) / total,
                             sum((f.box[1] + f.box[3]) / 2 * f.area for f in faces) / total)
        pulls.append((weights.face, centroids["face"]))
    if len(corners):
        centroids["edges"] = (float(corners[:, 0].mean()), float(corners[:, 1].mean()))
        pulls.append((weights.edges, centroids["edges"]))
    if salient is not None:
        centroids["saliency"] = salient
        pulls.append((weights.saliency, salient))
    pulls = [(weight, point) for weight, point in pulls if weight > 0]

    if pulls:
        total_weight = sum(weight for weight, _ in pulls)
        point = (sum(w * p[0] for w, p in pulls) / total_weight, sum(w * p[1] for w, p in pulls) / total_weight)
    else:
        point = (small.width / 2, small.height / 2)
    if faces:
        method: FocalMethod = "face-anime" if faces[0].kind == "anime" else "face-photo"
    else:
        method = "saliency" if pulls else "centre"
    # The top of the detail: the 10th percentile of corner heights ignores a stray star or cloud above the subject.
    subject_top = float(np.percentile(corners[:, 1], 10)) if len(corners) >= 5 else None
    ordered = sorted(faces, key=lambda face: face.area * face.score, reverse=True)
    focus = Focus(point, method, tuple(face.box for face in ordered), subject_top, centroids)
    return focus if factor == 1.0 else focus.scaled(1 / factor)


# --- anime faces ---------------------------------------------------------------------------------


class _LegacyImaging(ctypes.Structure):
    """Pillow 4.2's ``struct ImagingMemoryInstance`` (the fields the animeface wheel reads)."""

    _fields_ = [
        ("mode", ctypes.c_char * 7),
        ("type", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bands", ctypes.c_int),
        ("xsize", ctypes.c_int),
        ("ysize", ctypes.c_int),
        ("palette", ctypes.c_void_p),
        ("image8", ctypes.c_void_p),
        ("image32", ctypes.c_void_p),
        ("image", ctypes.c_void_p),
        ("block", ctypes.c_void_p),
        ("pixelsize", ctypes.c_int),
        ("linesize", ctypes.c_int),
        ("destroy", ctypes.c_void_p),
    ]


@cache
def _animeface() -> tuple[object, bool] | None:
    """(the animeface module, whether to hand it the legacy struct), or None where it is not installed."""
    try:
        import animeface
        from animeface import _nvxs
    except Exception:  # missing on this platform, or a broken build: faces then come from OpenCV alone
        return None
    try:
        from importlib.metadata import version

        installed = version("animeface")
    except Exception:
        installed = ""
    compiled = str(getattr(_nvxs, "__file__", "")).endswith((".so", ".pyd"))
    legacy = compiled and installed in _ANIMEFACE_LEGACY_LAYOUT and sys.implementation.name == "cpython"
    return animeface, legacy


def animeface_available() -> bool:
    return _animeface() is not None


def anime_faces(rgb: np.ndarray) -> list[Face]:
    """Drawn faces found by AnimeFace 2009 (nagadomi; the animeface wheel), boxes in ``rgb``'s pixels."""
    found = _animeface()
    height, width = rgb.shape[:2]
    if found is None or min(width, height) < 43:  # its smallest search window is 42.6 px
        return []
    module, legacy = found
    try:
        if legacy:
            results = _detect_legacy(module, rgb)
        else:
            results = module.detect(Image.fromarray(rgb, "RGB"))
    except Exception:
        return []
    faces = []
    for result in results:
        box = result.face.pos
        if result.likelihood >= ANIME_MIN_LIKELIHOOD and box.width > 0 and box.height > 0:
            faces.append(Face((box.x, box.y, box.x + box.width, box.y + box.height), float(result.likelihood),
                              "anime"))
    return faces


def _detect_legacy(module, rgb: np.ndarray) -> list:
    height, width = rgb.shape[:2]
    # Pillow 4 kept RGB pixels in 4 bytes each, one pointer per row.
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[..., :3] = rgb
    stride = width * 4
    rows = (ctypes.c_void_p * height)(*(pixels.ctypes.data + y * stride for y in range(height)))
    image = _LegacyImaging(b"RGB", 0, 8, 3, width, height, None, None, ctypes.addressof(rows),
                           ctypes.addressof(rows), None, 4, stride, None)
    # The extension takes its argument as a Pillow ImagingObject and reads the pointer after the object header;
    # in a ctypes instance that slot is the pointer to the instance's own buffer: our struct.
    raw = module._nvxs.detect(image)
    return [module.Face(result) for result in raw]


# --- photo faces ---------------------------------------------------------------------------------

_local = threading.local()


def _cascades() -> list[tuple[object, float, str]]:
    """The Haar cascades, one set per thread (a CascadeClassifier is not safe to share between threads)."""
    cascades = getattr(_local, "cascades", None)
    if cascades is None:
        import cv2

        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        cascades = []
        if folder and hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 dropped both
            for name, min_fraction in HAAR_CASCADES:
                classifier = cv2.CascadeClassifier(os.path.join(folder, name))
                if not classifier.empty():
                    cascades.append((classifier, min_fraction, name))
        _local.cascades = cascades
    return cascades


def photo_faces(grey: np.ndarray) -> list[Face]:
    """Faces by OpenCV's Haar cascades in A1111's order; eyes and upper bodies become face-sized boxes."""
    short = min(grey.shape[:2])
    for classifier, min_fraction, name in _cascades():
        min_side = max(8, int(short * min_fraction))
        found = classifier.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=7, minSize=(min_side, min_side))
        if len(found):  # a numpy array: `if found` would raise as soon as something is found
            return [Face(_face_region(name, x, y, w, h), 1.0, "photo") for x, y, w, h in found]
    return []


def _face_region(cascade: str, x: float, y: float, w: float, h: float) -> FloatBox:
    if "eye" in cascade:  # a face is about three eye-widths across, centred a little below the eye
        cx, cy = x + w / 2, y + h / 2 + 0.5 * h
        return (cx - 1.5 * w, cy - 1.5 * w, cx + 1.5 * w, cy + 1.5 * w)
    if "upperbody" in cascade:  # the head is the top 40 % of an upper-body box, centred
        return (x + 0.25 * w, y, x + 0.75 * w, y + 0.4 * h)
    return (float(x), float(y), float(x + w), float(y + h))


# --- corners and saliency ------------------------------------------------------------------------


def corner_points(grey: np.ndarray) -> np.ndarray:
    """Up to 100 strong corners (A1111's settings) as an (n, 2) array of x, y; the bottom tenth is ignored."""
    import cv2

    height, width = grey.shape[:2]
    if min(width, height) < 8:
        return np.empty((0, 2))
    guarded = grey.copy()
    guarded[int(height * (1 - WATERMARK_BAND)):] = 153  # A1111 paints it #999
    found = cv2.goodFeaturesToTrack(guarded, maxCorners=100, qualityLevel=0.04,
                                    minDistance=min(width, height) * 0.06, useHarrisDetector=False)
    return np.empty((0, 2)) if found is None else found.reshape(-1, 2).astype(np.float64)


def saliency_point(grey: np.ndarray) -> tuple[float, float] | None:
    """Centre of the most salient region by the spectral residual (Hou & Zhang 2007), on a 64 px thumbnail.

    A1111 uses the "entropy" of 1-bit windows here, which favours nearly empty windows; the spectral residual
    marks what stands out from the picture's own texture, which is what a crop should keep.
    """
    import cv2

    height, width = grey.shape[:2]
    factor = _SALIENCY_SIDE / max(width, height)
    small_w, small_h = max(4, round(width * factor)), max(4, round(height * factor))
    small = cv2.resize(grey, (small_w, small_h), interpolation=cv2.INTER_AREA).astype(np.float64)
    if float(small.std()) < 1e-6:
        return None  # a flat picture has nothing that stands out
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3))
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = cv2.GaussianBlur(saliency, (0, 0), 2.5)
    strong = np.where(saliency > saliency.mean() + saliency.std(), saliency, 0.0)
    total = float(strong.sum())
    if not np.isfinite(total) or total <= 0:
        return None
    ys, xs = np.mgrid[0:small_h, 0:small_w]
    return (float((strong * (xs + 0.5)).sum() / total) * width / small_w,
            float((strong * (ys + 0.5)).sum() / total) * height / small_h)
