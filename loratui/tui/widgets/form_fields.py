"""The editors of a settings form (step 4): a switch, a choice and one row holding either, or a text input.

Every state reads without colour (design §2.10): a switch says ``[x] on`` / ``[ ] off``, a choice shows its
value with ``▾``, the focused row starts with ``▸``, a changed value says ``✎ preset: 10`` and a bad one ``✗``.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from loratui.tui.params_fields import FieldSpec, shown


class Edited(Message):
    """A field's editor changed its value (typed text, a toggled switch, a chosen option)."""

    def __init__(self, row: FieldRow, text: str) -> None:
        super().__init__()
        self.row, self.text = row, text


class Toggle(Static, can_focus=True):
    """A switch: space or enter flips it."""

    BINDINGS = [Binding("space,enter", "flip", "Switch", show=False)]

    def __init__(self, value: bool, *, classes: str = "") -> None:
        super().__init__(classes=classes)
        self.value = value

    def on_mount(self) -> None:
        self._draw()

    def set_value(self, value: bool) -> None:
        self.value = value
        self._draw()

    def _draw(self) -> None:
        self.update(Text("[x] on" if self.value else "[ ] off"))

    class Flipped(Message):
        def __init__(self, toggle: Toggle) -> None:
            super().__init__()
            self.toggle = toggle

    def action_flip(self) -> None:
        self.set_value(not self.value)
        self.post_message(self.Flipped(self))


class ChoiceDialog(ModalScreen[str | None]):
    """The options of a choice field; enter takes the highlighted one, esc keeps the old value."""

    DEFAULT_CSS = """
    ChoiceDialog { align: center middle; }
    ChoiceDialog #choice-box { width: 44; height: auto; max-height: 20; border: heavy $accent;
        background: $surface; padding: 0 1; }
    ChoiceDialog OptionList { height: auto; max-height: 14; border: none; }
    .-ascii ChoiceDialog #choice-box { border: ascii $accent; }
    """
    SCOPED_CSS = False
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, title: str, choices: tuple[str, ...], current: str, notes: dict[str, str] | None = None):
        super().__init__()
        self.title_text, self.choices, self.current = title, choices, current
        self.notes = notes or {}

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-box") as box:
            box.border_title = self.title_text
            box.border_subtitle = "enter picks  esc keeps"
            yield OptionList(*[Option(self._prompt(c), id=c) for c in self.choices])

    def _prompt(self, choice: str) -> Text:
        mark = "*" if choice == self.current else " "
        note = self.notes.get(choice, "")
        return Text(f"{mark} {choice}" + (f"  {note}" if note else ""))

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.current in self.choices:
            options.highlighted = self.choices.index(self.current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        self.dismiss(None)


class Choice(Static, can_focus=True):
    """One of a few values: enter opens the list; left and right step through it in place."""

    BINDINGS = [
        Binding("enter,space", "open", "Choose", show=False),
        Binding("left", "step(-1)", show=False),
        Binding("right", "step(1)", show=False),
    ]

    def __init__(self, value: str, choices: tuple[str, ...], title: str, *, classes: str = "") -> None:
        super().__init__(classes=classes)
        self.value, self.choices, self.title_text = value, choices, title

    def on_mount(self) -> None:
        self._draw()

    def set_value(self, value: str) -> None:
        self.value = value
        self._draw()

    def _draw(self) -> None:
        down = "v" if getattr(self.app, "ascii_only", False) else "▾"
        # no inner spaces for a long value: "[cosine_with_restarts ▾]" still fits the expert column at 80
        self.update(Text(f"[ {self.value} {down} ]" if len(self.value) < 16 else f"[{self.value} {down}]"))

    def action_open(self) -> None:
        self.app.push_screen(ChoiceDialog(self.title_text, self.choices, self.value), self._chosen)

    def action_step(self, delta: int) -> None:
        if self.value in self.choices:
            index = (self.choices.index(self.value) + delta) % len(self.choices)
        else:
            index = 0
        self._chosen(self.choices[index])

    class Chosen(Message):
        def __init__(self, choice: Choice, value: str) -> None:
            super().__init__()
            self.choice, self.value = choice, value

    def _chosen(self, value: str | None) -> None:
        if value is None or value == self.value:
            return
        self.set_value(value)
        self.post_message(self.Chosen(self, value))


class NumberInput(Input):
    """A number's input: ``?`` opens the help (as everywhere else) instead of being typed, since no number has it."""

    async def _on_key(self, event) -> None:  # noqa: ANN001
        if event.character == "?":
            event.stop()
            event.prevent_default()
            self.app.action_help()  # type: ignore[attr-defined]
            return
        await super()._on_key(event)


class FieldRow(Vertical):
    """One setting: ``▸ Label  [ value ]  note``, and under it a line for a problem or a finding (the base
    model's ``SD1.5, found ✓``) that takes no room while it is empty."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    FieldRow .field-line { height: 1; }
    FieldRow .field-mark { width: 2; }
    FieldRow .field-label { width: 13; }
    FieldRow .field-bracket { width: 1; }
    FieldRow Input { width: 8; }
    FieldRow Input.-wide-input { width: 28; }
    FieldRow Input.-long-input { width: 20; }
    FieldRow .field-fixed { width: auto; }
    FieldRow Toggle, FieldRow Choice { width: auto; }
    FieldRow .field-note { width: 1fr; padding-left: 1; }
    FieldRow .field-below { height: auto; padding-left: 15; display: none; }
    FieldRow .field-below.-shown { display: block; }
    """

    def __init__(self, spec: FieldSpec, value: Any, *, concept: int = 0, label: str = "", fixed: str = "",
                 width: str = "") -> None:
        super().__init__()
        self.spec, self.concept = spec, concept
        self.label_text = label or spec.label
        self.value = value
        self.fixed = fixed  # a read-only row's text ("512 px (set in Crop)")
        self.width_class = width

    @property
    def editor(self) -> Widget | None:
        for widget in self.query(".field-editor"):
            return widget
        return None

    def compose(self) -> ComposeResult:
        spec = self.spec
        with Horizontal(classes="field-line"):
            yield Static("  ", classes="field-mark")
            yield Static(Text(self.label_text), classes="field-label")
            if spec.readonly or self.fixed:
                yield Static(Text(self.fixed), classes="field-fixed")
            elif spec.is_bool:
                yield Toggle(bool(self.value), classes="field-editor")
            elif spec.choices:
                yield Choice(str(self.value), spec.choices, spec.label, classes="field-editor")
            else:
                yield Static("[", classes="field-bracket")
                kind = Input if spec.hint() is str else NumberInput
                yield kind(shown(self.value), compact=True, select_on_focus=False,
                           classes=f"field-editor {self.width_class}".strip())
                yield Static("]", classes="field-bracket")
            yield Static("", classes="field-note")
        yield Static("", classes="field-below")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(Edited(self, event.value))

    def on_toggle_flipped(self, event: Toggle.Flipped) -> None:
        event.stop()
        self.post_message(Edited(self, "true" if event.toggle.value else "false"))

    def on_choice_chosen(self, event: Choice.Chosen) -> None:
        event.stop()
        self.post_message(Edited(self, event.value))

    def set_text(self, text: str) -> None:
        """Put a value back into the editor (undo, a preset loaded) without it counting as typing."""
        editor = self.editor
        if isinstance(editor, Input):
            with editor.prevent(Input.Changed):
                editor.value = text
        elif isinstance(editor, Toggle):
            editor.set_value(text == "true")
        elif isinstance(editor, Choice):
            editor.set_value(text)

    def fits(self, note: str) -> bool:
        """Whether ``note`` fits beside the value (before the first layout: assume it does)."""
        line = self.query_one(".field-line")
        if not line.size.width:
            return True
        used = sum(child.outer_size.width for child in line.children if not child.has_class("field-note"))
        return used + 1 + len(note) <= line.size.width

    def set_note(self, note: str) -> None:
        self.query_one(".field-note", Static).update(Text(note))

    def set_below(self, text: str) -> None:
        below = self.query_one(".field-below", Static)
        below.update(Text(text))
        below.set_class(bool(text), "-shown")

    def set_fixed(self, text: str) -> None:
        self.fixed = text
        for widget in self.query(".field-fixed"):
            widget.update(Text(text))  # type: ignore[attr-defined]

    def set_focused(self, focused: bool, cursor: str) -> None:
        self.query_one(".field-mark", Static).update(f"{cursor} " if focused else "  ")
        self.set_class(focused, "-focused")
