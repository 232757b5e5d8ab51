"""Real terminal graphics for the Preview step, as an opt-in (design §4.6, research/textual.md "images over SSH"):
one probe before the app starts (a Kitty graphics query, then DA1 as the sentinel every terminal answers), and the
two encoders: Kitty's graphics protocol (the PNG itself, base64 in 4096-byte chunks) and Sixel (quantized to a
palette, bands of six rows, run-length coded). Plain Python: no Textual here, so it is tested against a pty."""

from __future__ import annotations

import base64
import os
import re
import select
import termios
import time
import tty
from collections.abc import Callable, Mapping
from dataclasses import dataclass

ESC = "\x1b"
ST = ESC + "\\"
PROBE_ID = 31
KITTY_QUERY = f"{ESC}_Gi={PROBE_ID},s=1,v=1,a=q,t=d,f=24;AAAA{ST}"
DA1_QUERY = f"{ESC}[c"
CELL_QUERY = f"{ESC}[16t"  # xterm's "report the cell size in pixels": ESC [ 6 ; height ; width t
CELL_ANSWER = re.compile(rb"\x1b\[6;([0-9]+);([0-9]+)t")
KITTY_OK = re.compile(rb"\x1b_Gi=" + str(PROBE_ID).encode() + rb";OK\x1b\\")
DA1_ANSWER = re.compile(rb"\x1b\[\?([0-9;]*)c")
CHUNK = 4096
IMAGE_ID = 7  # the one picture the Preview step places; a new one with this id replaces it

TMUX = "Not inside tmux: its panes cannot pass pictures through"
SCREEN = "Not inside screen: it cannot pass pictures through"
DUMB = "TERM=dumb: this terminal draws no pictures"
NOT_A_TTY = "Not a terminal: stdin or stdout is redirected, so there is no terminal to draw pictures in"
NO_ANSWER = "Your terminal did not answer the graphics probe"


@dataclass(frozen=True)
class Support:
    """What the terminal said it draws; ``reason`` says why neither is used (not probed, or no answer)."""

    kitty: bool = False
    sixel: bool = False
    reason: str = ""
    cell_pixels: tuple[int, int] | None = None  # (width, height) of a cell, when the terminal said

    @property
    def any(self) -> bool:
        return self.kitty or self.sixel

    @property
    def name(self) -> str:
        return "Kitty" if self.kitty else "Sixel" if self.sixel else ""


def skip_reason(environ: Mapping[str, str], isatty: Callable[[int], bool] | bool = os.isatty) -> str | None:
    """Why the terminal is not probed (None: probe it): tmux or screen, TERM=dumb, stdin/stdout not a tty."""
    if environ.get("TMUX"):
        return TMUX
    if environ.get("STY"):
        return SCREEN
    if environ.get("TERM", "") == "dumb":
        return DUMB
    ttys = isatty if isinstance(isatty, bool) else isatty(0) and isatty(1)
    return None if ttys else NOT_A_TTY


def should_probe(environ: Mapping[str, str], isatty: Callable[[int], bool] | bool = os.isatty) -> bool:
    return skip_reason(environ, isatty) is None


def probe(fd_in: int, fd_out: int, timeout_s: float = 0.2) -> Support:
    """Ask the terminal (raw mode, restored after) whether it draws Kitty graphics and Sixel. Reads until the DA1
    answer or ``timeout_s``; a terminal that answers nothing gives no support (never an error)."""
    try:
        saved = termios.tcgetattr(fd_in)
    except (termios.error, OSError):
        return Support(reason=NOT_A_TTY)
    answer = b""
    try:
        tty.setraw(fd_in, termios.TCSANOW)
        os.write(fd_out, (KITTY_QUERY + CELL_QUERY + DA1_QUERY).encode("ascii"))  # DA1 last: all answer it
        deadline = time.monotonic() + timeout_s
        while not DA1_ANSWER.search(answer):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd_in], [], [], left)
            if not ready:
                break
            data = os.read(fd_in, 1024)
            if not data:
                break
            answer += data
    except OSError:
        pass
    finally:
        try:
            termios.tcsetattr(fd_in, termios.TCSANOW, saved)
        except (termios.error, OSError):
            pass
    return parse_answer(answer)


def parse_answer(answer: bytes) -> Support:
    kitty = bool(KITTY_OK.search(answer))
    da1 = DA1_ANSWER.search(answer)
    sixel = bool(da1) and "4" in da1.group(1).decode("ascii").split(";")
    if not (kitty or sixel):
        reason = NO_ANSWER if not answer else "Your terminal answered the probe: it draws neither Kitty nor Sixel"
        return Support(reason=reason)
    cell = CELL_ANSWER.search(answer)
    pixels = (int(cell.group(2)), int(cell.group(1))) if cell else None
    return Support(kitty=kitty, sixel=sixel, cell_pixels=pixels if pixels and all(pixels) else None)


def window_cell_pixels(fd: int) -> tuple[int, int] | None:
    """A cell's (width, height) in pixels from the tty's window size, which most terminals fill in with the
    pixels too (xterm, kitty, foot, WezTerm); None when it holds only rows and columns. Read again on every
    picture: the user may change the font size while the wizard runs."""
    import fcntl
    import struct

    try:
        rows, columns, width, height = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    if not (rows and columns and width and height):
        return None
    return width // columns, height // rows


# --- Kitty ------------------------------------------------------------------------------------------------------


def kitty_sequence(png_bytes: bytes, cols: int, rows: int, image_id: int = IMAGE_ID) -> str:
    """The PNG drawn at the cursor, scaled to ``cols`` x ``rows`` cells, the cursor left where it was (C=1);
    q=2: the terminal sends no replies (they would arrive as keys)."""
    data = base64.standard_b64encode(png_bytes).decode("ascii")
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [""]
    out = []
    for index, chunk in enumerate(chunks):
        more = 1 if index < len(chunks) - 1 else 0
        keys = f"a=T,f=100,i={image_id},c={cols},r={rows},C=1,q=2,m={more}" if index == 0 else f"m={more},q=2"
        out.append(f"{ESC}_G{keys};{chunk}{ST}")
    return "".join(out)


def kitty_delete(image_id: int = IMAGE_ID) -> str:
    """Deletes the picture (its placements and its data)."""
    return f"{ESC}_Ga=d,d=I,i={image_id},q=2{ST}"


# --- Sixel ------------------------------------------------------------------------------------------------------


def _rle(data: bytes) -> str:
    out, i, n = [], 0, len(data)
    while i < n:
        j = i
        while j < n and data[j] == data[i]:
            j += 1
        run, char = j - i, chr(data[i])
        out.append(f"!{run}{char}" if run > 3 else char * run)
        i = j
    return "".join(out)


def sixel_sequence(pil_image, max_colors: int = 256) -> str:  # noqa: ANN001 - a PIL.Image.Image
    """A Sixel picture of ``pil_image`` at its own pixel size: quantized to at most ``max_colors`` colours
    (``#n;2;r;g;b``, 0-100), six rows a band, each colour's sixels run-length coded, ``$`` between colours of a
    band and ``-`` between bands."""
    from PIL import Image

    image = pil_image.convert("RGB")
    width, height = image.size
    quantized = image.quantize(colors=max(1, min(256, max_colors)), method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.NONE)
    pixels = quantized.tobytes()
    palette = quantized.getpalette() or []
    used = sorted({index for _, index in (quantized.getcolors(256) or [])})
    out = [f"{ESC}Pq", f'"1;1;{width};{height}']
    for index in used:
        r, g, b = palette[3 * index:3 * index + 3]
        out.append(f"#{index};2;{round(r * 100 / 255)};{round(g * 100 / 255)};{round(b * 100 / 255)}")
    bands = []
    for top in range(0, height, 6):
        sixels: dict[int, bytearray] = {}
        for dy in range(min(6, height - top)):
            row = pixels[(top + dy) * width:(top + dy + 1) * width]
            bit = 1 << dy
            for x, index in enumerate(row):
                line = sixels.get(index)
                if line is None:
                    line = sixels[index] = bytearray(width)
                line[x] |= bit
        parts = []
        for index in sorted(sixels):
            line = bytes(sixels[index]).rstrip(b"\0")
            parts.append(f"#{index}" + _rle(bytes(63 + v for v in line)))
        bands.append("$".join(parts))
    out.append("-".join(bands))
    out.append(ST)
    return "".join(out)
