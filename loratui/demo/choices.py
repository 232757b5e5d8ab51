"""What the demo decides ahead for the wizard, kept in the demo project's own state folder: the tags the trigger word
should carry (the seed article deletes the character's own features) and the stand-in WebUI's Lora folder. Plain
Python: the wizard reads it, and `loratui demo --headless` uses the same names."""

from __future__ import annotations

import json
from pathlib import Path

from loratui.fsutil import atomic_write_text
from loratui.project import Project

# The demo's pictures always show these, so its tagger finds them on every picture.
FEATURE_TAGS = ("red hair", "blue eyes")
LORA_FOLDER = Path("webui") / "models" / "Lora"
CHOICES_FILE = "demo-choices.json"


def write_demo_choices(project: Project, delete_tags: tuple[str, ...] = FEATURE_TAGS) -> None:
    atomic_write_text(project.state_dir / CHOICES_FILE, json.dumps({"delete_tags": list(delete_tags)}) + "\n")


def demo_delete_tags(project: Project) -> list[str]:
    """The DELs the demo chose ahead, or [] for any other project (or a file that cannot be read)."""
    try:
        data = json.loads((project.state_dir / CHOICES_FILE).read_text(encoding="utf-8"))
        return [str(tag) for tag in data.get("delete_tags", [])]
    except (OSError, ValueError, AttributeError):
        return []
