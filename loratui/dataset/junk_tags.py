"""Tags that describe the file rather than the subject (a WD14 tagger writes them for marks on the picture):
the Tags screen's "delete junk tags" marks them DEL."""

from __future__ import annotations

from loratui.dataset.captions import tag_key

JUNK_TAGS: tuple[str, ...] = (
    "watermark",
    "sample watermark",
    "signature",
    "artist name",
    "artist logo",
    "dated",
    "web address",
    "twitter username",
    "patreon username",
    "pixiv id",
    "jpeg artifacts",
)
_JUNK_KEYS = frozenset(tag_key(tag) for tag in JUNK_TAGS)


def is_junk(tag: str) -> bool:
    return tag_key(tag) in _JUNK_KEYS
