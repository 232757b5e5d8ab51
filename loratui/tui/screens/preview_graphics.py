"""Step 6 Preview's opt-in terminal graphics (design §4.6 "Palette", research/textual.md "images over SSH"): when
the terminal answered run_wizard's probe (Kitty or Sixel; never inside tmux or screen), the palette's "Preview: use
terminal graphics" draws the highlighted cell at full resolution over the cell picture box, written straight to
the terminal after the frame that laid the box out; leaving the screen (or turning it off) removes it (Kitty:
delete; Sixel: a full repaint). Off or unsupported, nothing changes: the half-cell picture stays."""

from __future__ import annotations

import os
from pathlib import Path

from textual import work
from textual.geometry import Region

from loratui.tui import terminal_graphics as tg
from loratui.tui.screens.preview_cells import DONE

CELL_PIXELS = (10, 20)  # a cell's pixels when the terminal tells neither way (about twice as tall as wide)
SAVE_CURSOR, RESTORE_CURSOR = "\x1b7", "\x1b8"
OFF = "Terminal graphics off: the cell is drawn in half-cell blocks again."


def write_to_terminal(app, data: str) -> None:  # noqa: ANN001 - the App
    """Raw output through Textual's driver (its writer thread keeps the order with the frames); a no-op headless."""
    driver = getattr(app, "_driver", None)
    if driver is None:
        return
    driver.write(data)
    driver.flush()


def offered(app) -> tg.Support | None:  # noqa: ANN001
    """The probe's answer when it found Kitty or Sixel and no tmux/screen is in the way now; else None."""
    support = getattr(app, "graphics", None)
    if support is None or not support.any or os.environ.get("TMUX") or os.environ.get("STY"):
        return None
    return support


def not_offered_reason(app) -> str:  # noqa: ANN001
    if os.environ.get("TMUX"):
        return tg.TMUX
    if os.environ.get("STY"):
        return tg.SCREEN
    support = getattr(app, "graphics", None)
    return (support.reason if support is not None and support.reason else tg.NO_ANSWER)


def cell_pixels(support: tg.Support | None, fd: int = 1) -> tuple[int, int]:
    """A cell's pixels: the tty's window size now, else the probe's answer to ``CSI 16 t``, else CELL_PIXELS.
    Sixel is drawn in pixels, so a wrong guess draws it larger or smaller than its box."""
    return tg.window_cell_pixels(fd) or (support.cell_pixels if support else None) or CELL_PIXELS


def fit(region: Region, size: tuple[int, int], cell: tuple[int, int] = CELL_PIXELS) -> Region:
    """The cells a picture of ``size`` pixels takes in ``region``, its aspect kept, centred."""
    width, height = size
    cell_w, cell_h = cell
    if not width or not height or not region.width or not region.height:
        return Region(region.x, region.y, 0, 0)
    scale = min(region.width * cell_w / width, region.height * cell_h / height)
    columns = max(1, min(region.width, round(width * scale / cell_w)))
    rows = max(1, min(region.height, round(height * scale / cell_h)))
    return Region(region.x + (region.width - columns) // 2, region.y + (region.height - rows) // 2, columns, rows)


def encode(kind: str, path: Path, region: Region, cell: tuple[int, int] = CELL_PIXELS) -> tuple[Region, str]:
    """The sequence that draws ``path`` in ``region`` (screen cells), cursor saved and restored around it."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        place = fit(region, image.size, cell)
        if kind == "kitty":
            sequence = tg.kitty_sequence(path.read_bytes(), place.width, place.height)
        else:
            pixels = (place.width * cell[0], place.height * cell[1])
            sequence = tg.sixel_sequence(image.convert("RGB").resize(pixels, Image.Resampling.LANCZOS))
    return place, f"{SAVE_CURSOR}\x1b[{place.y + 1};{place.x + 1}H{sequence}{RESTORE_CURSOR}"


class PreviewGraphics:
    """Mixed into PreviewScreen: ``graphics_on``, the palette's toggle, and the picture kept over the cell box."""

    graphics_on = False
    _graphics_drawn: tuple | None = None  # (path, region) drawn on the terminal now
    _graphics_kind = ""  # "kitty" or "sixel" while on

    def graphics_offered(self) -> bool:
        return offered(self.app) is not None

    def action_terminal_graphics(self) -> None:
        support = offered(self.app)
        if support is None:
            self.graphics_on = False
            self.say(not_offered_reason(self.app), "!")
            return
        self.graphics_on = not self.graphics_on
        if self.graphics_on:
            self._graphics_kind = "kitty" if support.kitty else "sixel"
            self.say(f"Terminal graphics on ({support.name}): the cell is drawn at full resolution.")
        else:
            self.graphics_remove()
            self.say(OFF)
        self._show_cell()  # the half-cell picture makes room for it (or comes back)

    def graphics_cell_changed(self) -> None:
        """After _show_cell: once the frame with the cell box is drawn, draw the cell over it."""
        if self.graphics_on:
            self.call_after_refresh(self._graphics_place)

    def _graphics_wanted(self) -> tuple | None:
        cell = self.current_cell()
        if cell is None or cell.file is None or cell.state != DONE:
            return None
        region = self.query_one("#pv-picture").content_region
        return (Path(cell.file), region) if region.width and region.height else None

    def _graphics_place(self) -> None:
        if not self.graphics_on or not self.is_current:
            return
        wanted = self._graphics_wanted()
        if wanted == self._graphics_drawn:
            return
        if wanted is None:
            self.graphics_remove()
            return
        self._graphics_encode(self._graphics_kind, *wanted)

    @work(thread=True, exclusive=True, group="preview-graphics", exit_on_error=False)
    def _graphics_encode(self, kind: str, path: Path, region: Region) -> None:
        try:
            _, sequence = encode(kind, path, region, cell_pixels(getattr(self.app, "graphics", None)))
        except (OSError, ValueError) as exc:
            self.app.call_from_thread(self.say, f"Terminal graphics: cannot draw {path.name}: {exc}", "!")
            return
        self.app.call_from_thread(self._graphics_write, (path, region), sequence)

    def _graphics_write(self, key: tuple, sequence: str) -> None:
        if not self.graphics_on or not self.is_current or self._graphics_wanted() != key:
            return  # the cursor moved on, the box changed, or the screen was left while it was encoded
        if self._graphics_drawn is not None and self._graphics_kind == "sixel":
            self.app.refresh(layout=True, repaint=True)  # the old Sixel picture goes before the new one comes
            self._graphics_drawn = None
            self.call_after_refresh(self._graphics_write, key, sequence)
            return
        write_to_terminal(self.app, sequence)  # Kitty: the same image id replaces the old picture
        self._graphics_drawn = key

    def graphics_remove(self) -> None:
        if self._graphics_drawn is None:
            return
        self._graphics_drawn = None
        if self._graphics_kind == "kitty":
            write_to_terminal(self.app, tg.kitty_delete())
        else:
            self.app.refresh(layout=True, repaint=True)

    def on_screen_suspend(self) -> None:
        self.graphics_remove()  # a dialog, the palette or another step covers the box

    def on_screen_resume(self) -> None:
        self.graphics_cell_changed()

    def on_resize(self) -> None:
        self.graphics_cell_changed()
