"""A rough kind for a booru tag (hair, eyes, clothes, face, pose, background, people), from the words in it: the
Tags screen's 120-column list shows it so the tags a trigger should absorb (hair, eyes, outfit) stand together.
WD14's own categories only split general tags from character names and ratings, so this reads the words."""

from __future__ import annotations

import re

# Checked in this order: "hair ribbon" is clothes (an accessory), "long hair" is hair.
KINDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("people", frozenset("1girl 1boy 2girls 2boys 3girls multiple solo focus couple".split())),
    ("clothes", frozenset("""shirt dress skirt uniform jacket coat hat cap gloves shoes boots socks thighhighs
        pantyhose pants shorts ribbon bow necktie tie sleeves sleeveless collar hood hoodie kimono swimsuit bikini
        sweater cape scarf belt earrings jewelry necklace armor headband hairband ornament hairclip glasses
        apron vest bra leotard serafuku blazer cardigan choker wristband bracelet mask helmet clothes outfit
        underwear frills lace buttons zipper pocket""".split())),
    ("eyes", frozenset("eyes eye eyelashes eyebrows pupils eyeshadow heterochromia eyepatch".split())),
    ("hair", frozenset("hair ponytail twintails braid braids bangs ahoge sidelocks bun haircut bob".split())),
    ("face", frozenset("""smile blush mouth teeth tongue expression frown crying tears grin fang fangs lips
        makeup lipstick freckles mole smirk closed ^_^ :d :o :3 ;d >_<""".split())),
    ("pose", frozenset("""standing sitting lying kneeling squatting running walking jumping pose arms arm hands
        hand legs leg looking viewer side behind above below body shot portrait close-up leaning crossed holding
        v peace sign waving head tilt fighting stance""".split())),
    ("background", frozenset("""background outdoors indoors sky cloud clouds tree trees day night city room water
        beach forest grass flower flowers building window street snow sunset scenery bedroom classroom
        cityscape ocean river mountain field""".split())),
)


def tag_kind(tag: str) -> str:
    """The tag's kind, or "" when its words say nothing (``smile`` -> face, ``red hair`` -> hair)."""
    words = set(re.split(r"[\s_]+", tag.strip().lower()))
    for kind, known in KINDS:
        if words & known:
            return kind
    return ""
