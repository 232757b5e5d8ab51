"""Pilot helpers shared by the wizard's tests."""

from __future__ import annotations


async def run_palette(pilot, words: str) -> None:
    """Run a palette command by typing ``words``: the palette searches asynchronously, so wait until the command is
    its first hit before enter, then until it has closed (a fixed pause is too short on a loaded CI machine)."""
    from textual.command import CommandList, CommandPalette

    await pilot.press("ctrl+p", *words)
    for _ in range(200):
        await pilot.pause(0.05)
        palette = pilot.app.screen
        if isinstance(palette, CommandPalette):
            hits = palette.query_one(CommandList)
            if hits.option_count and words.lower() in str(hits.get_option_at_index(0).prompt).lower():
                break
    await pilot.press("enter")
    for _ in range(100):
        await pilot.pause(0.05)
        if not isinstance(pilot.app.screen, CommandPalette):
            break
    await pilot.pause()


async def until(pilot, condition, seconds: float = 30.0, what: str = "the screen") -> None:
    """Pause until ``condition()`` holds, up to ``seconds`` of wall time (not a count of pauses: on a loaded CI
    machine each pause takes longer than asked)."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        await pilot.pause(0.05)
