"""Keeps transformers and diffusers quiet in loratui's output: errors only, no advisory warnings."""

from __future__ import annotations

import os
import sys


def quiet_hf_libraries() -> None:
    """Call before (or after) importing diffusers/transformers.

    Their INFO/WARNING chatter (torchvision fallbacks, per-adapter "LOAD REPORT" tables, deprecation advice)
    means nothing to a loratui user and buries the one line that matters. Real errors still raise.
    """
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # Already imported: the variables above were read at import time, so set the levels directly.
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
    if "diffusers" in sys.modules:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
