"""loratui.tui.terminal_graphics: the probe against a pty pair (a thread plays the terminal), who is probed, the Kitty
chunks decoded back to the PNG, and the Sixel encoder decoded back by a small decoder of its own."""

from __future__ import annotations

import base64
import io
import os
import re
import termios
import threading
import time

import pytest
from PIL import Image

from loratui.tui import terminal_graphics as tg


def _terminal(master: int, answer: bytes | None, heard: list[bytes]) -> threading.Thread:
    def play() -> None:
        data = b""
        while b"\x1b[c" not in data:
            data += os.read(master, 1024)
        heard.append(data)
        if answer is not None:
            os.write(master, answer)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(("answer", "kitty", "sixel"), [
    (b"\x1b_Gi=31;OK\x1b\\\x1b[?62;4;22c", True, True),
    (b"\x1b_Gi=31;OK\x1b\\\x1b[?62;22c", True, False),
    (b"\x1b[?62;4c", False, True),
    (b"\x1b[?1;2c", False, False),
    (b"\x1b_Gi=31;ENOTSUPPORTED:no\x1b\\\x1b[?64;44c", False, False),
])
def test_probe_reads_the_answers_up_to_da1_and_restores_the_tty(answer, kitty, sixel):
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        heard: list[bytes] = []
        thread = _terminal(master, answer, heard)
        started = time.monotonic()
        support = tg.probe(slave, slave, timeout_s=2.0)
        assert time.monotonic() - started < 1.5  # the DA1 answer ends it, not the timeout
        thread.join(1)
        assert (support.kitty, support.sixel) == (kitty, sixel)
        assert heard[0] == (tg.KITTY_QUERY + tg.CELL_QUERY + tg.DA1_QUERY).encode()
        assert heard[0].startswith(b"\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\")
        assert termios.tcgetattr(slave) == before
        assert support.any == (kitty or sixel)
    finally:
        os.close(master)
        os.close(slave)


def test_probe_with_no_answer_gives_no_support_within_the_timeout():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        heard: list[bytes] = []
        _terminal(master, None, heard)
        started = time.monotonic()
        support = tg.probe(slave, slave, timeout_s=0.2)
        elapsed = time.monotonic() - started
        assert 0.15 <= elapsed < 0.6
        assert not support.any and support.reason == tg.NO_ANSWER
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_probe_of_something_that_is_not_a_tty_gives_no_support(tmp_path):
    with open(tmp_path / "f", "w+b") as handle:
        assert not tg.probe(handle.fileno(), handle.fileno()).any


def test_the_cell_size_comes_from_the_window_size_then_the_probe_then_the_assumption():
    """Sixel is drawn in pixels: xterm's 6x13 font and a 10x20 guess differ by half, so the picture would spill
    out of its box (seen in a real xterm -ti vt340 before this)."""
    import fcntl
    import struct

    from loratui.tui.screens import preview_graphics

    answered = tg.parse_answer(b"\x1b[6;13;6t\x1b[?63;1;4c")
    assert answered.sixel and answered.cell_pixels == (6, 13)
    assert tg.parse_answer(b"\x1b[?63;1;4c").cell_pixels is None  # a terminal that keeps window ops off
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        assert tg.window_cell_pixels(slave) is None  # rows and columns only
        assert preview_graphics.cell_pixels(answered, slave) == (6, 13)
        assert preview_graphics.cell_pixels(tg.Support(sixel=True), slave) == preview_graphics.CELL_PIXELS
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 80 * 9, 24 * 18))
        assert tg.window_cell_pixels(slave) == (9, 18)
        assert preview_graphics.cell_pixels(answered, slave) == (9, 18)  # what the window says now wins
    finally:
        os.close(master)
        os.close(slave)
    # The same picture takes more cells with a smaller font, never more than its box.
    from textual.geometry import Region

    box = Region(0, 0, 40, 20)
    assert preview_graphics.fit(box, (128, 128), (10, 20)) == Region(0, 0, 40, 20)
    small = preview_graphics.fit(box, (128, 128), (6, 13))
    assert small.width <= 40 and small.height <= 20 and abs(small.width * 6 - small.height * 13) <= 13


def test_should_probe_never_inside_tmux_or_screen_nor_dumb_nor_without_ttys():
    assert tg.should_probe({"TERM": "xterm-kitty"}, lambda fd: True)
    assert not tg.should_probe({"TERM": "xterm", "TMUX": "/tmp/tmux-0/default,1,0"}, lambda fd: True)
    assert not tg.should_probe({"TERM": "screen", "STY": "123.pts-0"}, lambda fd: True)
    assert not tg.should_probe({"TERM": "dumb"}, lambda fd: True)
    assert not tg.should_probe({"TERM": "xterm"}, lambda fd: fd == 0)
    assert not tg.should_probe({"TERM": "xterm"}, False)
    assert tg.skip_reason({"TMUX": "x"}, True).startswith("Not inside tmux")


def _png(size=(300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, "PNG")  # noise: a PNG of several chunks
    return buffer.getvalue()


def test_kitty_sequence_chunks_decode_back_to_the_png():
    png = _png()
    sequence = tg.kitty_sequence(png, 30, 12)
    chunks = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", sequence)
    assert len(chunks) > 2 and "".join(re.findall(r"\x1b_G[^\x1b]*\x1b\\", sequence)) == sequence
    first = dict(item.split("=") for item in chunks[0][0].split(","))
    assert first["a"] == "T" and first["f"] == "100" and first["q"] == "2"
    assert (first["c"], first["r"], first["m"]) == ("30", "12", "1")
    assert [dict(item.split("=") for item in keys.split(","))["m"] for keys, _ in chunks] == \
        ["1"] * (len(chunks) - 1) + ["0"]
    assert all(len(data) == 4096 for _, data in chunks[:-1]) and 0 < len(chunks[-1][1]) <= 4096
    assert all("q=2" in keys for keys, _ in chunks)
    assert base64.standard_b64decode("".join(data for _, data in chunks)) == png


def test_a_small_png_is_one_chunk_and_delete_names_the_image():
    sequence = tg.kitty_sequence(b"\x89PNG", 2, 1)
    assert sequence.count("\x1b_G") == 1 and "m=0" in sequence
    assert tg.kitty_delete() == f"\x1b_Ga=d,d=I,i={tg.IMAGE_ID},q=2\x1b\\"


def decode_sixel(sequence: str) -> tuple[int, int, dict[tuple[int, int], tuple[int, int, int]]]:
    """A small Sixel decoder: raster size and the colour (0-100 per channel) of every pixel drawn."""
    assert sequence.startswith("\x1bPq") and sequence.endswith("\x1b\\")
    body = sequence[3:-2]
    raster = re.match(r'"1;1;(\d+);(\d+)', body)
    assert raster
    width, height = int(raster.group(1)), int(raster.group(2))
    body = body[raster.end():]
    palette: dict[int, tuple[int, int, int]] = {}
    pixels: dict[tuple[int, int], tuple[int, int, int]] = {}
    colour, x, top, i = 0, 0, 0, 0
    while i < len(body):
        char = body[i]
        if char == "#":
            match = re.match(r"#(\d+)(?:;2;(\d+);(\d+);(\d+))?", body[i:])
            colour = int(match.group(1))
            if match.group(2) is not None:
                palette[colour] = (int(match.group(2)), int(match.group(3)), int(match.group(4)))
            i += match.end()
            continue
        count = 1
        if char == "!":
            match = re.match(r"!(\d+)", body[i:])
            count = int(match.group(1))
            i += match.end()
            char = body[i]
        if char == "$":
            x = 0
        elif char == "-":
            x, top = 0, top + 6
        else:
            bits = ord(char) - 63
            assert 0 <= bits < 64
            for _ in range(count):
                for dy in range(6):
                    if bits & (1 << dy):
                        pixels[(x, top + dy)] = palette[colour]
                x += 1
        i += 1
    return width, height, pixels


def test_sixel_of_a_12x7_picture_decodes_back_to_its_colours():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    image = Image.new("RGB", (12, 7))
    for y in range(7):
        for x in range(12):
            image.putpixel((x, y), colours[(x // 3 + y // 2) % 4] if y != 6 else (0, 0, 0))
    sequence = tg.sixel_sequence(image)
    width, height, pixels = decode_sixel(sequence)
    assert (width, height) == (12, 7)
    assert sequence.count("-") == 1  # two bands: rows 0-5 and row 6
    assert len(pixels) == 12 * 7
    for (x, y), colour in pixels.items():
        want = image.getpixel((x, y))
        assert colour == tuple(round(v * 100 / 255) for v in want)
    assert len(re.findall(r"#\d+;2;", sequence)) == 5  # the palette holds the five colours used


def test_sixel_runs_are_run_length_coded():
    image = Image.new("RGB", (40, 6), (255, 0, 0))
    sequence = tg.sixel_sequence(image)
    assert "!40~" in sequence  # 40 columns of all six rows set, in one run
    assert re.search(r"#\d+;2;100;0;0", sequence)
    width, height, pixels = decode_sixel(sequence)
    assert (width, height, len(pixels)) == (40, 6, 240)


def test_sixel_keeps_to_max_colors():
    image = Image.effect_noise((32, 18), 80).convert("RGB")
    sequence = tg.sixel_sequence(image, max_colors=8)
    assert 1 <= len(re.findall(r"#\d+;2;", sequence)) <= 8
    _, _, pixels = decode_sixel(sequence)
    assert len(pixels) == 32 * 18
