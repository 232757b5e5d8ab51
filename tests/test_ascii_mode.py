"""`--ascii` (design §2.10): every screen drawn with plain characters (borders, pictures, the sparkline, the
glyphs), the terminal output translated symbol for symbol as a net, letters kept, and Textual's own drawing back
for the next app without it."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time
import unicodedata

import pytest
from pilot_helpers import until
from preview_fixtures import checkpoint_project, write_rendered_grid

from loratui.tui import ascii_mode
from loratui.tui.app import WizardApp


def _letters_only(text: str) -> set[str]:
    """The characters of ``text`` outside ASCII that are not letters or digits (which --ascii keeps)."""
    return {ch for ch in text if ord(ch) > 127 and unicodedata.category(ch)[0] not in "LN"}


def _screen_text(app) -> str:
    import html

    svg = app.export_screenshot()
    return html.unescape("".join(re.findall(r"<text [^>]*>(.*?)</text>", svg))).replace("\xa0", " ")  # SVG spaces


def test_to_ascii_is_one_for_one_and_keeps_letters():
    drawn = "╭─ Loss ─╮│▀▄█▁▂▏…✓✗▸›◉∙✎⟳▪▾×→┃━┏┛"
    plain = ascii_mode.to_ascii(drawn)
    assert len(plain) == len(drawn) and all(ord(ch) < 128 for ch in plain)
    assert plain.startswith("+- Loss -+|") and plain[-4:] == "|-++"
    assert ascii_mode.to_ascii("✓ done … 512×512") == "v done . 512x512"
    names = "café Ярослава 中文.png ß"
    assert ascii_mode.to_ascii(names) == names  # names keep their letters, wide ones included
    for code, plain_char in ascii_mode.table().items():
        assert len(plain_char) <= 1 and all(ord(ch) < 128 for ch in plain_char), chr(code)


def test_the_ascii_driver_translates_what_it_writes():
    written: list[str] = []

    class Recording:
        def write(self, data: str) -> None:
            written.append(data)

    driver = ascii_mode.ascii_driver(Recording)()
    driver.write("\x1b[1;1H╭─╮ ✓ loading…")
    assert written == ["\x1b[1;1H+-+ v loading."]
    assert ascii_mode.ascii_driver(Recording).__name__ == "AsciiRecording"


@pytest.mark.asyncio
async def test_every_step_draws_plain_characters_and_the_next_app_draws_textuals_own(tmp_path):
    from textual import _border
    from textual.renderables.sparkline import Sparkline

    project = checkpoint_project(tmp_path)
    write_rendered_grid(project)
    app = WizardApp(project.root, ascii_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        for number in range(1, 7):
            await pilot.press("ctrl+g", str(number))
            await until(pilot, lambda n=number: getattr(getattr(app.screen, "step", None), "number", 0) == n)
            await pilot.pause(0.3)  # pictures decode in a thread
            assert _letters_only(_screen_text(app)) == set(), f"step {number}"
        assert Sparkline.BARS == ascii_mode.SPARK_BARS
    unicode_app = WizardApp(project.root)
    async with unicode_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert _border.BORDER_CHARS["round"][0][0] == "╭" and Sparkline.BARS[-1] == "█"
        assert _letters_only(_screen_text(unicode_app)) != set()  # the Unicode wizard draws its lines


def test_the_real_terminal_output_under_ascii_holds_no_symbol(tmp_path):
    """`loratui DIR --ascii` in a pseudo-terminal, visiting every step: what reaches the terminal."""
    project = checkpoint_project(tmp_path)
    write_rendered_grid(project)
    main_end, child_end = os.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**{k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX")}, "TERM": "xterm-256color",
           "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-m", "loratui", str(project.root), "--ascii"], stdin=child_end,
                             stdout=child_end, stderr=child_end, env=env, start_new_session=True)
    os.close(child_end)
    output = bytearray()

    def read_for(seconds: float) -> None:
        import select

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_end], [], [], 0.1)
            if ready:
                try:
                    output.extend(os.read(main_end, 65536))
                except OSError:
                    return

    try:
        read_for(4.0)  # start, the graphics probe nobody answers, the first screen
        for number in "123456":
            os.write(main_end, b"\x07")  # ^g
            read_for(0.3)
            os.write(main_end, number.encode())
            read_for(1.5)
        os.write(main_end, b"\x11")  # ^q
        read_for(2.0)
        child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
        os.close(main_end)
    text = output.decode("utf-8", errors="replace")
    assert "Preview" in text and "Train" in text  # it did draw the steps
    assert _letters_only(text) == set()
