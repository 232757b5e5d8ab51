"""Caption files: every encoding users bring is read, tags normalised, and written back as one UTF-8 line."""

from __future__ import annotations

import random

import pytest

from loratui.dataset.captions import (
    DAMAGED,
    apply_trigger_and_deletions,
    decode_caption,
    find_source_caption,
    format_caption,
    normalise_tags,
    parse_caption_bytes,
    read_caption,
    split_tags,
    tag_key,
    write_caption,
)

TAGS = ["1girl", "red hair", "blue eyes"]


def test_utf8_bom_is_stripped_and_reported(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfakari, red hair")
    caption = read_caption(path)
    assert caption.tags == ["akari", "red hair"]  # no U+FEFF glued to the trigger word
    assert caption.encoding == "utf-8-sig"
    assert any("byte-order mark" in w for w in caption.warnings)


@pytest.mark.parametrize("codec, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_a_bom(tmp_path, codec, bom):
    path = tmp_path / "a.txt"
    path.write_bytes(bom + "猫耳, red hair".encode(codec))
    caption = read_caption(path)
    assert (caption.tags, caption.encoding, caption.certain) == (["猫耳", "red hair"], codec, True)
    assert any("not UTF-8" in w for w in caption.warnings)


GUESSED = "its encoding could not be told for sure"


def test_gbk_text_reads_as_gb18030_but_only_as_a_guess(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("红色头发, 蓝眼睛, 1girl".encode("gbk"))
    caption = read_caption(path)
    assert caption.tags == ["红色头发", "蓝眼睛", "1girl"]
    assert (caption.encoding, caption.certain) == ("gb18030", False)
    assert caption.warnings[0] == (f"{GUESSED} (it reads as GB18030 (GBK), which may be wrong): loratui will not "
                                   "rewrite it; open it in a text editor and save it as UTF-8")


def test_shift_jis_text_is_not_mistaken_for_gb18030(tmp_path):
    # These bytes are also valid GB18030 (as nonsense hanzi): the kana decide.
    data = "ねこみみ, 猫耳, セーラー服".encode("cp932")
    data.decode("gb18030")
    path = tmp_path / "a.txt"
    path.write_bytes(data)
    caption = read_caption(path)
    assert (caption.tags, caption.encoding, caption.certain) == (["ねこみみ", "猫耳", "セーラー服"], "cp932", False)
    assert GUESSED in caption.warnings[0] and "Shift-JIS" in caption.warnings[0]


def test_kanji_only_shift_jis_cannot_be_told_from_gb18030(tmp_path):
    # No kana to go by: the bytes read as other, valid hanzi in GB18030. Not certain, so nothing may rewrite it.
    caption = parse_caption_bytes("赤髪, 笑顔".encode("shift_jis"))
    assert caption.tags != ["赤髪", "笑顔"] and not caption.certain
    assert GUESSED in caption.warnings[0] and "save it as UTF-8" in caption.warnings[0]


def test_plain_utf8_needs_no_warning(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("猫耳, ねこみみ, red hair\n", encoding="utf-8")
    caption = read_caption(path)
    assert (caption.tags, caption.encoding, caption.warnings) == (["猫耳", "ねこみみ", "red hair"], "utf-8", [])
    assert caption.certain and parse_caption_bytes(b"\xef\xbb\xbfred hair").certain


def test_undecodable_bytes_are_replaced_not_fatal(tmp_path):
    text, encoding = decode_caption(b"red hair, \xff\xff\xff")
    assert "red hair" in text and "damaged" in encoding
    path = tmp_path / "a.txt"
    path.write_bytes(b"red hair, \xff\xfe\xff")
    caption = read_caption(path)
    assert caption.tags[0] == "red hair" and not caption.certain
    assert caption.warnings[0].startswith(f"{GUESSED} (it is text in no known encoding")


@pytest.mark.parametrize("data, encoding", [
    (random.Random(7).randbytes(64), DAMAGED),
    # A UTF-16 BOM is two bytes any binary file may start with: what follows must read as real text.
    (b"\xff\xfe" + random.Random(7).randbytes(64), "utf-16-le"),
    ("red hair, smile".encode("utf-16-le"), "utf-16-le"),  # no BOM: valid UTF-8 full of NULs, or UTF-16?
    ("red hair, smile".encode("utf-16-be"), "utf-16-be"),
    ("café, naïve".encode("cp1252"), DAMAGED),
])
def test_guessed_encodings_are_not_certain(data, encoding):
    caption = parse_caption_bytes(data)
    assert (caption.encoding, caption.certain) == (encoding, False)
    assert caption.warnings[0].startswith(GUESSED)


def test_utf16_without_a_bom_reads_its_tags():
    assert parse_caption_bytes("red hair, smile".encode("utf-16-le")).tags == ["red hair", "smile"]


def test_several_lines_are_joined_with_a_warning(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"1girl, red hair\r\n\r\nsmile,  blue eyes\nred_hair\n")
    caption = read_caption(path)
    assert caption.tags == ["1girl", "red hair", "smile", "blue eyes"]
    assert caption.warnings == ["has 3 lines; kohya reads only the first, so they were joined into one"]


@pytest.mark.parametrize("data", [b"", b"   \n\t\n", b" , ,, \n"])
def test_empty_and_blank_captions_hold_no_tags(tmp_path, data):
    path = tmp_path / "a.txt"
    path.write_bytes(data)
    assert read_caption(path).tags == []


def test_weights_and_escapes_stay_verbatim():
    text = r"(red hair, smile:1.2), hatsune miku \(vocaloid\), [blue eyes],  ((masterpiece)) , {a|b}"
    assert split_tags(text) == [
        "(red hair, smile:1.2)", r"hatsune miku \(vocaloid\)", "[blue eyes]", "((masterpiece))", "{a|b}",
    ]


def test_a_bracket_that_never_closes_does_not_swallow_the_rest():
    assert split_tags("1girl, :(, red hair, smile") == ["1girl", ":(", "red hair", "smile"]
    assert split_tags(":), red hair") == [":)", "red hair"]


def test_tags_match_across_case_underscore_spaces_and_escapes():
    assert tag_key("Long_Hair") == tag_key("long  hair") == tag_key(" long hair ")
    assert tag_key(r"hatsune_miku_\(vocaloid\)") == tag_key("Hatsune Miku (vocaloid)")
    assert tag_key("(red hair:1.2)") != tag_key("red hair")  # a weighted tag is its own tag


def test_normalise_keeps_the_first_spelling_and_the_order():
    tags = [" long_hair ", "Red  Hair", "long hair", "LONG_HAIR", "red_hair", "smile", "", "(smile:1.2)"]
    assert normalise_tags(tags) == ["long_hair", "Red Hair", "smile", "(smile:1.2)"]


def test_write_gives_one_utf8_line_without_bom_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a.txt"
    write_caption(path, ["猫耳", "red_hair", "Red Hair", " smile "])
    assert path.read_bytes() == "猫耳, red_hair, smile\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    write_caption(path, ["a", "b"])
    assert path.read_bytes() == b"a, b\n"
    assert format_caption(["a", "b"]) == "a, b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_round_trip_of_a_written_caption_is_stable(tmp_path):
    path = tmp_path / "a.txt"
    write_caption(path, ["(red hair, smile:1.2)", r"\(escaped\)", "blue eyes"])
    caption = read_caption(path)
    assert caption.tags == ["(red hair, smile:1.2)", r"\(escaped\)", "blue eyes"]
    assert caption.warnings == []


def test_trigger_goes_first_once_and_deleted_tags_go():
    tags = ["1girl", "Akari", "red hair", "blue_eyes", "smile"]
    assert apply_trigger_and_deletions(tags, "akari", ["Blue Eyes", "red_hair"]) == ["akari", "1girl", "smile"]
    # A trigger of several tags keeps its order at the front; one of them deleted still stays (the trigger wins).
    assert apply_trigger_and_deletions(tags, "rishi, naruto", ["naruto", "smile"]) == [
        "rishi", "naruto", "1girl", "Akari", "red hair", "blue_eyes"]
    assert apply_trigger_and_deletions(tags, "", []) == tags


def test_source_captions_are_found_beside_the_picture(tmp_path):
    image = tmp_path / "pic one.PNG"
    image.write_bytes(b"")
    assert find_source_caption(image) is None
    (tmp_path / "pic one.caption").write_text("x")
    assert find_source_caption(image) == tmp_path / "pic one.caption"
    (tmp_path / "pic one.txt").write_text("y")
    assert find_source_caption(image) == tmp_path / "pic one.txt"
