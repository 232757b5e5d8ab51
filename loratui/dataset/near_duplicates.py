"""Near-duplicate pictures: the 64-bit perceptual hash and grouping pictures whose hashes are close."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

# Perceptual hashes (64 bits) this close are near-duplicates: resized, recompressed or re-encoded copies land
# within 0-2 bits; the 24 different shots of the one demo character (same palette, similar framing) stay 10+ apart.
DUPLICATE_DISTANCE = 6
HASH_SIDE = 32  # the hash looks at the picture shrunk to this side
# Of the 63 low frequencies, how many must carry something for the hash to mean anything: drawings and photos
# have 39-60 (the demo set), a gradient or a few flat blocks 0-8.
_MIN_HASH_DETAIL = 16


def perceptual_hash(image: Image.Image) -> int | None:
    """A 64-bit DCT hash (pHash): the sign of the 8x8 lowest frequencies against their median.

    Survives resizing, recompression and small colour shifts; a crop or a different shot changes it.
    A picture with almost no structure (one colour, a plain gradient, two blocks) gives None: most of its
    coefficients are zero, their signs are noise, and any two such pictures would look alike.
    """
    import cv2

    grey = np.asarray(image.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX), dtype=np.float32)
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
