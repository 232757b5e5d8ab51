"""How loratui writes a duration: 21s, 12m05s, 3h07m (one formatter for every command and screen)."""

from __future__ import annotations

import math


def format_duration(seconds: float | None) -> str:
    """``21s`` under a minute, ``12m05s`` under an hour, ``3h07m`` beyond (hours go past 24: ``27h00m``).

    Rounded to the nearest second first (so 59.6 s is ``1m00s``), the hour form to the nearest minute.
    None, NaN, infinite, negative or a non-number (a value read from a damaged file) gives ``?``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return "?"
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = math.floor(seconds + 0.5)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    minutes = (whole + 30) // 60
    return f"{minutes // 60}h{minutes % 60:02d}m"
