"""``^o`` on step 4: find a base model (or VAE) on this machine: a typed path, or picked from a tree of folders
that shows only folders and model files. enter on a file (or on a diffusers folder, which has model_index.json)
takes it; the form then checks it in a thread (``checking…`` -> ``SD1.5, found ✓``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Static

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin", ".pth")


class ModelTree(DirectoryTree):
    """Folders (hidden ones left out) and model files only: a Stable Diffusion folder has thousands of others.
    backspace climbs to the parent folder (the tree starts at the current model's folder)."""

    # One-cell marks instead of Textual's folder emoji, whose width differs between terminals (design §2.10)
    ICON_NODE_EXPANDED = "▾ "
    ICON_NODE = "▸ "
    ICON_FILE = "  "
    BINDINGS = [Binding("backspace", "parent", "Parent folder", show=False)]

    def use_ascii(self) -> None:
        """--ascii: plain marks and guides (Textual draws box-drawing lines, ambiguous width in CJK terminals)."""
        self.ICON_NODE_EXPANDED, self.ICON_NODE = "- ", "+ "
        self.LINES = {name: ("  ", "| ", "`-", "|-") for name in DirectoryTree.LINES}

    def action_parent(self) -> None:
        parent = Path(self.path).parent
        if parent != Path(self.path):
            self.path = parent

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in MODEL_SUFFIXES)]


class ModelBrowser(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ModelBrowser { align: center middle; }
    #browse-box { width: 76; height: 20; border: heavy $accent; background: $surface; padding: 0 1; }
    #browse-path { margin-bottom: 0; }
    #browse-tree { height: 1fr; border: round $panel; }
    #browse-error { height: auto; }
    .-ascii #browse-box, .-ascii #browse-path, .-ascii #browse-path:focus, .-ascii #browse-tree {
        border: ascii $accent; }
    """
    SCOPED_CSS = False
    BINDINGS = [Binding("escape", "close", "Cancel"), Binding("tab", "switch", show=False)]

    def __init__(self, label: str, current: str, project_root: Path) -> None:
        super().__init__()
        self.label, self.current, self.root = label, current, project_root

    def _start_folder(self) -> Path:
        if self.current:
            path = Path(self.current).expanduser()
            path = path if path.is_absolute() else self.root / path
            for candidate in (path, *path.parents):
                if candidate.is_dir():
                    return candidate.parent if candidate == path and (path / "model_index.json").is_file() \
                        else candidate
        return self.root

    def compose(self) -> ComposeResult:
        with Vertical(id="browse-box") as box:
            box.border_title = f"{self.label}: a .safetensors file or a diffusers folder"
            box.border_subtitle = "enter takes it  backspace up  tab path/tree  esc cancels"
            yield Input(self.current, placeholder="~/sd/models/Stable-diffusion/model.safetensors", id="browse-path",
                        select_on_focus=False)
            yield ModelTree(self._start_folder(), id="browse-tree")
            yield Static("", id="browse-error")

    def on_mount(self) -> None:
        tree = self.query_one("#browse-tree", ModelTree)
        if getattr(self.app, "ascii_only", False):
            tree.use_ascii()
        tree.focus()

    def action_switch(self) -> None:
        tree, path = self.query_one("#browse-tree"), self.query_one("#browse-path")
        (path if tree.has_focus else tree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(self._shown(event.path))

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        if (event.path / "model_index.json").is_file():
            self.dismiss(self._shown(event.path))
        else:
            self.query_one("#browse-path", Input).value = str(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        failed = getattr(getattr(self.app, "glyphs", None), "failed", "x")
        if not text:
            self.query_one("#browse-error", Static).update(f"{failed} Type a path, or esc to keep the old one.")
            return
        path = Path(text).expanduser()
        full = path if path.is_absolute() else self.root / path
        if not full.exists():
            self.query_one("#browse-error", Static).update(f"{failed} {text}: not found. Type another path.")
            return
        if full.is_dir() and not (full / "model_index.json").is_file():
            tree = self.query_one("#browse-tree", ModelTree)
            tree.path = full  # a plain folder: show what is in it
            tree.focus()
            return
        self.dismiss(text)

    def _shown(self, path: Path) -> str:
        """Inside the project: relative (the project folder can move); elsewhere: absolute."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def action_close(self) -> None:
        self.dismiss(None)
