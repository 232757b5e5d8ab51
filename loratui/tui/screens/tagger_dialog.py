"""`^r` on Tags (design §4.3): which tagger, its thresholds, and what to do with captions a picture already has,
then the Tags screen runs `loratui tag` as a job with these options."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, OptionList, Static

from loratui.jobs.command import TagOptions
from loratui.tui.glyphs import UNICODE
from loratui.tui.widgets.marked_button import MarkedButton

MERGE_MODES = (
    ("append", "append: keep each caption, add the new tags"),
    ("overwrite", "overwrite: replace captions (backed up first)"),
    ("skip", "skip: tag only pictures without a caption"),
)


class MergeList(OptionList):
    """append / overwrite / skip: space or enter picks the highlighted one."""

    BINDINGS = [Binding("space", "select", "Pick", show=False)]


class TaggerDialog(ModalScreen[TagOptions | None]):
    """The tagger's settings for one run; nothing is saved to loratui.toml. ``esc`` cancels."""

    DEFAULT_CSS = """
    TaggerDialog { align: center middle; }
    TaggerDialog #tagger-box { width: 72; height: auto; border: heavy $accent; padding: 0 1; }
    TaggerDialog .row { height: 1; }
    TaggerDialog .row Static { width: auto; }
    TaggerDialog Input, TaggerDialog Input:focus { border: none; height: 1; padding: 0; width: 1fr; }
    TaggerDialog #merge, TaggerDialog #merge:focus { height: 3; border: none; padding: 0; }
    TaggerDialog #tagger-error { height: auto; }
    TaggerDialog #tagger-buttons { height: auto; align-horizontal: right; }
    TaggerDialog Button { margin-left: 1; }
    .-ascii TaggerDialog #tagger-box { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names TaggerDialog; unscoped so the app's -ascii class reaches them
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, model: str, general: float, character: float, merge: str, captions: int) -> None:
        super().__init__()
        self.model, self.general, self.character = model, general, character
        self.merge = merge if merge in {m for m, _ in MERGE_MODES} else "append"
        self.captions = captions

    def compose(self) -> ComposeResult:
        from loratui.dataset.tagger_models import KNOWN_MODELS

        with Vertical(id="tagger-box") as box:
            box.border_title = "Run the tagger"
            yield Static("Model: a hub id (tab completes a known one) or a folder with model.onnx and "
                         "selected_tags.csv.")
            with Horizontal(classes="row"):
                yield Static("Model     ")
                yield Input(self.model, id="model", select_on_focus=False,
                            suggester=SuggestFromList([m.repo for m in KNOWN_MODELS], case_sensitive=False))
            with Horizontal(classes="row"):
                yield Static("General threshold   (0-1, usual 0.35) ")
                yield Input(f"{self.general:g}", id="general", type="number")
            with Horizontal(classes="row"):
                yield Static("Character threshold (0-1, usual 0.85) ")
                yield Input(f"{self.character:g}", id="character", type="number")
            yield Static(f"Existing captions ({self.captions} found): up/down, space picks")
            yield MergeList(*self._merge_prompts(), id="merge")
            yield Static("", id="tagger-error")
            with Horizontal(id="tagger-buttons"):
                yield MarkedButton("Run tagger", id="run", variant="primary")
                yield MarkedButton("Cancel", id="cancel")

    def _merge_prompts(self) -> list[str]:
        on = getattr(self.app, "glyphs", UNICODE).on
        return [f"({on if mode == self.merge else ' '}) {text}" for mode, text in MERGE_MODES]

    def on_mount(self) -> None:
        merge = self.query_one("#merge", OptionList)
        merge.highlighted = [m for m, _ in MERGE_MODES].index(self.merge)
        self.query_one("#run", Button).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._pick(event.option_index)


    def _pick(self, index: int) -> None:
        self.merge = MERGE_MODES[index][0]
        merge = self.query_one("#merge", OptionList)
        for i, prompt in enumerate(self._merge_prompts()):
            merge.replace_option_prompt_at_index(i, prompt)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "run":
            self.action_run()
        else:
            self.dismiss(None)

    def _threshold(self, field: str, label: str) -> float | None:
        text = self.query_one(f"#{field}", Input).value.strip()
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            self._error(f"{self._failed} {label} threshold: {text or 'empty'} is not a number from 0 to 1 - "
                        "0.35 is usual")
            self.query_one(f"#{field}", Input).focus()
            return None
        return value

    @property
    def _failed(self) -> str:
        return "x" if getattr(self.app, "ascii_only", False) else "✗"

    def _error(self, message: str) -> None:
        self.query_one("#tagger-error", Static).update(message)

    def action_run(self) -> None:
        model = self.query_one("#model", Input).value.strip()
        if not model:
            self._error(f"{self._failed} Model: empty - give a hub id such as SmilingWolf/wd-swinv2-tagger-v3 or "
                        "a folder")
            self.query_one("#model", Input).focus()
            return
        general = self._threshold("general", "General")
        if general is None:
            return
        character = self._threshold("character", "Character")
        if character is None:
            return
        self.dismiss(TagOptions(model=model, general_threshold=general, character_threshold=character,
                                merge=self.merge))

    def action_cancel(self) -> None:
        self.dismiss(None)
