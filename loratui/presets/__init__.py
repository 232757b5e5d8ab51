"""Presets: named sets of settings (never paths), built in or saved in the user's config folder.

The built-in ones live in the repository's top-level ``presets/`` folder. The wheel ships that folder as
``loratui/presets/builtin/`` (pyproject.toml maps it); a checkout or an editable install reads ``presets/`` itself.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from loratui.config import PRESET_EXCLUDED_KEYS, PRESET_SECTIONS, Config
from loratui.config_io import config_to_dict, parse_config, read_settings_text
from loratui.errors import LoratuiError, Problem, ProblemsError
from loratui.fsutil import atomic_write_text


def _builtin_dir() -> Path:
    """The folder of the built-in presets: the installed wheel's copy, else the checkout's top-level presets/."""
    shipped = Path(__file__).parent / "builtin"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent.parent / "presets"


BUILTIN_DIR = _builtin_dir()
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FAMILIES = ("sd15", "sd2", "sd2-v", "sdxl")


@dataclass
class Preset:
    name: str
    description: str
    family: str
    origin: str  # "built-in" or "user"
    path: Path
    config: Config  # defaults overlaid with the preset's values


def user_preset_dir() -> Path:
    """Where ``presets save`` writes: $LORATUI_CONFIG_DIR/presets, else the platform's config folder."""
    override = os.environ.get("LORATUI_CONFIG_DIR")
    if override:
        return Path(override) / "presets"
    import platformdirs  # only here: keeps `loratui --help` from paying for it

    return Path(platformdirs.user_config_dir("loratui")) / "presets"


def _preset_files() -> dict[str, tuple[str, Path]]:
    found: dict[str, tuple[str, Path]] = {}
    user_dir = user_preset_dir()
    if user_dir.is_dir():
        for path in sorted(user_dir.glob("*.toml")):
            found[path.stem] = ("user", path)
    for path in sorted(BUILTIN_DIR.glob("*.toml")):
        found[path.stem] = ("built-in", path)  # a built-in name always means the shipped preset
    return found


def read_preset(path: Path, name: str, origin: str) -> Preset:
    """Parse and validate one preset file; every problem is reported with its file and key."""
    text = read_settings_text(path)
    config, problems = parse_config(text, str(path), preset=True)
    meta: dict[str, Any] = {}
    if not problems:
        meta = tomllib.loads(text).get("preset", {})
        problems = _check_meta(meta, str(path))
    if problems:
        raise ProblemsError(problems)
    return Preset(name, meta["description"], meta.get("family", ""), origin, path, config)


def _check_meta(meta: Any, file: str) -> list[Problem]:
    if not isinstance(meta, dict):
        return [Problem(file, "preset", "must be a table with description = \"...\"")]
    problems = []
    for key in meta:
        if key not in ("description", "family"):
            problems.append(Problem(file, f"preset.{key}", "unknown setting: [preset] has description, family"))
    if not isinstance(meta.get("description"), str) or not meta["description"].strip():
        problems.append(Problem(file, "preset.description", "missing: one line saying what the preset is for"))
    if "family" in meta and meta["family"] not in FAMILIES:
        problems.append(Problem(file, "preset.family", f"{meta['family']!r} is not one of {', '.join(FAMILIES)}"))
    return problems


def list_presets() -> list[Preset]:
    """Every preset, built-in first; a broken user preset raises with its file and key named."""
    files = _preset_files()
    ordered = sorted(files.items(), key=lambda item: (item[1][0] != "built-in", item[0]))
    return [read_preset(path, name, origin) for name, (origin, path) in ordered]


def find_preset(name: str) -> Preset:
    files = _preset_files()
    if name not in files:
        close = difflib.get_close_matches(name, list(files), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise LoratuiError(f"no preset named {name!r}{hint}: `loratui presets list` shows them")
    origin, path = files[name]
    return read_preset(path, name, origin)


def apply_preset(config: Config, preset: Preset) -> Config:
    """Return ``config`` with the preset's sections; paths, concepts and hand-placed crop boxes are kept."""
    crop_boxes = config.dataset.crop_boxes
    for section in PRESET_SECTIONS:
        setattr(config, section, getattr(preset.config, section))
    config.dataset.crop_boxes = crop_boxes
    config.project.preset = preset.name
    return config


def _looks_like_path(value: str) -> bool:
    # A hub id is "owner/name"; anything absolute, relative-dotted, home-based or present on disk is a path.
    return (value.startswith(("/", ".", "~")) or "\\" in value or Path(value).expanduser().exists()
            or value.count("/") != 1)


def preset_text(config: Config, description: str, family: str = "") -> str:
    """A preset file for ``config``: its settings only, never a path of this machine."""
    data = config_to_dict(config)
    out: dict[str, Any] = {"preset": {"description": description}}
    if family:
        out["preset"]["family"] = family
    for section in PRESET_SECTIONS:
        values = {k: v for k, v in data[section].items() if (section, k) not in PRESET_EXCLUDED_KEYS}
        if section == "tagging" and _looks_like_path(values["model"]):
            del values["model"]
        out[section] = values
    return tomli_w.dumps(out)


def save_preset(name: str, config: Config, description: str, family: str = "", force: bool = False) -> Path:
    """Write a user preset; refuses built-in names and, without ``force``, existing ones."""
    if not NAME_RE.match(name):
        raise LoratuiError(f"preset name {name!r}: use letters, digits, '-' and '_' (up to 64)")
    if (BUILTIN_DIR / f"{name}.toml").exists():
        raise LoratuiError(f"{name!r} is a built-in preset: save yours under another name, e.g. my-{name}")
    path = user_preset_dir() / f"{name}.toml"
    if path.exists() and not force:
        raise LoratuiError(f"{path} exists: add --force to replace it")
    atomic_write_text(path, preset_text(config, description, family))
    return path
