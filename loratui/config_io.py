"""Reading, validating and writing loratui.toml and preset files: every problem as one line naming file and key."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from loratui.config import AUTO, PRESET_EXCLUDED_KEYS, PRESET_SECTIONS, SECTIONS, Concept, Config
from loratui.errors import Problem, ProblemsError
from loratui.fsutil import atomic_write_text

CONFIG_FILE = "loratui.toml"

# Names users bring from kohya / lora-scripts configs, so an unknown key can point at ours.
KOHYA_NAMES = {
    "max_train_epochs": "epochs",
    "train_batch_size": "batch_size",
    "learning_rate": "unet_lr",
    "optimizer_type": "optimizer",
    "pretrained_model_name_or_path": "base_model",
    "num_repeats": "repeats",
    "class_tokens": "trigger",
    "cache_latents_to_disk": "cache_latents",
}

# Output names end up in file names and in <lora:NAME:0.8> prompts, so keep them plain.
OUTPUT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BAD_NAME_CHARS = set('/\\:*?"<>|')


@dataclass
class _Context:
    """Where problems go while one file is parsed, where to find each key's line and its value as written."""

    file: str
    lines: dict[tuple[str, str], int]
    problems: list[Problem]
    written: dict[tuple[str, str], str] = field(default_factory=dict)  # key -> the rest of its line after "="
    refused: set[tuple[str, str]] = field(default_factory=set)

    def add(self, table: str, key: str, message: str) -> None:
        label = f"{_label(table)}.{key}" if key else _label(table)
        line = self.lines.get((table, key)) or self.lines.get((table, ""))
        self.problems.append(Problem(self.file, label, message, line))
        self.refused.add((table, key))

    def quote(self, table: str, key: str, value: Any) -> str:
        """``value`` as the file spells it (``1e-4``, ``0``, ``'adam'``), so a message never shows a converted
        number; values not written on one line of their own are shown as TOML."""
        found = _literal(self.written[(table, key)]) if (table, key) in self.written else None
        if found is not None:
            literal, parsed = found
            if parsed == value and isinstance(parsed, bool) == isinstance(value, bool):
                return literal
        return _show(value)


def _label(table: str) -> str:
    """``concepts#0`` (internal) -> ``concepts[1]`` (what a user counts)."""
    if "#" in table:
        name, index = table.split("#")
        return f"{name}[{int(index) + 1}]"
    return table


def _find_lines(text: str) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str]]:
    """Line numbers of table headers and keys, so messages can say ``loratui.toml:12``, and the text after each
    key's ``=``, so they can quote the value as written."""
    found: dict[tuple[str, str], int] = {}
    written: dict[tuple[str, str], str] = {}
    table, counts = "", {}
    for number, line in enumerate(text.splitlines(), start=1):
        if m := re.match(r"^\s*\[\[\s*([\w.-]+)\s*\]\]", line):
            name = m.group(1)
            counts[name] = counts.get(name, -1) + 1
            table = f"{name}#{counts[name]}"
            found.setdefault((table, ""), number)
        elif m := re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line):
            table = m.group(1).replace('"', "")
            found.setdefault((table, ""), number)
        elif m := re.match(r"""^\s*(?:"([^"]+)"|'([^']+)'|([\w.-]+))\s*=(.*)$""", line):
            key = m.group(1) or m.group(2) or m.group(3)
            found.setdefault((table, key), number)
            written.setdefault((table, key), m.group(4))
    return found, written


def _literal(rest: str) -> tuple[str, Any] | None:
    """The value text after ``key =`` without a trailing comment, and what TOML reads from it; None when the
    value goes on over more lines (or is not valid). Only run for a message: parsing every line would slow down
    each load."""
    cuts = [i for i, char in enumerate(rest) if char == "#"] + [len(rest)]
    for cut in cuts:  # the first '#' that TOML takes for a comment ends the value
        candidate = rest[:cut].strip()
        try:
            return candidate, tomllib.loads(f"v = {candidate}")["v"]
        except tomllib.TOMLDecodeError:
            continue
    return None


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else _toml_value(value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    return str(value)


def _kind_name(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text in quotes"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin is list:
        return "a list of " + ("numbers" if typing.get_args(hint)[0] is float else "texts in quotes")
    if origin is dict:
        return "a table"
    return "a whole number or \"auto\""


def _type_of(value: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _coerce(value: Any, hint: Any, meta: dict, table: str, key: str, ctx: _Context) -> tuple[bool, Any]:
    """Check one value's type and limits; return (ok, value in its field's type)."""
    origin = typing.get_origin(hint)
    wrong = f"must be {_kind_name(hint)}, not {_type_of(value)} ({ctx.quote(table, key, value)})"
    if hint is bool:
        if not isinstance(value, bool):
            ctx.add(table, key, wrong)
            return False, None
        return True, value
    if hint is str:
        if not isinstance(value, str):
            ctx.add(table, key, wrong)
            return False, None
        return _check_choice(value, meta, table, key, ctx)
    if hint in (int, float) or meta["auto"]:
        if meta["auto"] and value == AUTO:
            return True, value
        number_ok = isinstance(value, int) or (hint is float and isinstance(value, float))
        if isinstance(value, bool) or not number_ok:
            ctx.add(table, key, wrong)
            return False, None
        value = float(value) if hint is float else value
        return _check_range(value, meta, table, key, ctx)
    if origin is list:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list):
            ctx.add(table, key, wrong)
            return False, None
        good = []
        for index, element in enumerate(value):
            ok, element = _coerce(element, item, meta, table, f"{key}[{index}]", ctx)
            if not ok:
                return False, None
            good.append(element)
        return True, good
    if origin is dict:
        if not isinstance(value, dict):
            ctx.add(table, key, wrong)
            return False, None
        return _check_crop_boxes(value, table, key, ctx)
    raise TypeError(f"no check for {hint!r}")  # a new field type without a check is a bug, not user input


def _check_choice(value: str, meta: dict, table: str, key: str, ctx: _Context) -> tuple[bool, Any]:
    choices = meta["choices"]
    if choices and value not in choices:
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
        lowered = [c for c in choices if c.lower() == value.lower()]
        hint = f" (did you mean {json.dumps((lowered or close)[0])}?)" if (lowered or close) else ""
        ctx.add(table, key, f"{ctx.quote(table, key, value)} is not one of {', '.join(choices)}{hint}")
        return False, None
    return True, value


def _check_range(value: float, meta: dict, table: str, key: str, ctx: _Context) -> tuple[bool, Any]:
    low, high, step = meta["minimum"], meta["maximum"], meta["multiple_of"]
    written = ctx.quote(table, key, value)  # as in the file: "0", not the 0.0 it was converted to
    if low is not None and value < low:
        ctx.add(table, key, f"{written} is too small: use {_show(low)} or more")
        return False, None
    if high is not None and value > high:
        ctx.add(table, key, f"{written} is too large: use {_show(high)} or less")
        return False, None
    if step and value % step:
        below = max(step, value // step * step)
        above = below + step if below < value else below
        options = f"{below} or {above}" if below != above else f"{below}"
        ctx.add(table, key, f"{written} is not a multiple of {step}: use {options}")
        return False, None
    return True, value


def _check_crop_boxes(boxes: dict, table: str, key: str, ctx: _Context) -> tuple[bool, Any]:
    good: dict[str, list[int]] = {}
    for name, box in boxes.items():
        where = f'{key}."{name}"'
        if "/" not in name:
            ctx.add(table, where, 'name the picture as "concept/path inside its source folder"')
            continue
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)):
            ctx.add(table, where, f"must be [left, top, right, bottom] in whole pixels, not {_show(box)}")
            continue
        left, top, right, bottom = box
        if min(box) < 0 or left >= right or top >= bottom:
            ctx.add(table, where, f"{_show(box)} is not a box: need 0 <= left < right and 0 <= top < bottom")
            continue
        good[name] = box
    return True, good


def _parse_table(cls: type, data: Any, table: str, ctx: _Context, skip: set[str] = frozenset()) -> Any:
    """Build one section's dataclass from its TOML table; bad values fall back to defaults after a problem."""
    if not isinstance(data, dict):
        ctx.add(table, "", f"must be a table ([{table}]), not {_type_of(data)}")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, raw in data.items():
        if key not in known or key in skip:
            ctx.add(table, key, _unknown_key_message(key, [k for k in known if k not in skip], table))
            continue
        ok, value = _coerce(raw, hints[key], known[key].metadata, table, key, ctx)
        if ok:
            values[key] = value
    for name, f in known.items():
        if f.metadata["required"] and name not in data:
            ctx.add(table, name, f"missing: {f.metadata['help']}")
    return cls(**values)


def _unknown_key_message(key: str, known: list[str], table: str) -> str:
    ours = KOHYA_NAMES.get(key)
    if ours in known:
        return f"unknown setting: loratui calls it {ours}"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown setting (did you mean {close[0]}?)"
    return f"unknown setting: [{_label(table).split('[')[0]}] has " + ", ".join(known)


def _read_toml(text: str, file: str) -> tuple[dict[str, Any], Problem | None]:
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        return {}, Problem(file, "", f"not valid TOML: {exc}")


def syntax_problem(text: str, file: str) -> Problem | None:
    """The TOML syntax error of ``text``, if any. Nothing else in such a file can be judged (every setting would
    read as missing), so a caller reports this one line alone."""
    return _read_toml(text, file)[1]


def parse_config(text: str, file: str, *, preset: bool = False) -> tuple[Config, list[Problem]]:
    """Parse a loratui.toml (or a preset's settings) and list every problem; never raises for bad input."""
    data, syntax = _read_toml(text, file)
    if syntax is not None:
        return Config(), [syntax]
    lines, written = _find_lines(text)
    ctx = _Context(file, lines, [], written)
    config = Config()
    allowed = set(PRESET_SECTIONS) | ({"preset"} if preset else set(SECTIONS))
    for section, value in data.items():
        if section not in allowed:
            if preset and section in SECTIONS:
                ctx.add(section, "", "a preset holds settings only, not the project's paths or concepts")
            else:
                close = difflib.get_close_matches(section, sorted(allowed), n=1, cutoff=0.6)
                hint = f" (did you mean [{close[0]}]?)" if close else f": use {', '.join(sorted(allowed))}"
                ctx.add(section, "", f"unknown section{hint}")
            continue
        if section == "preset":
            continue  # the preset's own description; read by loratui.presets
        if section == "concepts":
            config.concepts = _parse_concepts(value, ctx)
            continue
        skip = {k for s, k in PRESET_EXCLUDED_KEYS if s == section} if preset else set()
        setattr(config, section, _parse_table(SECTIONS[section], value, section, ctx, skip))
    _cross_checks(config, ctx, preset)
    return config, ctx.problems


def _parse_concepts(value: Any, ctx: _Context) -> list[Concept]:
    if not isinstance(value, list):
        ctx.add("concepts", "", "must be written as [[concepts]] tables, one per concept")
        return []
    return [_parse_table(Concept, item, f"concepts#{i}", ctx) for i, item in enumerate(value)]


def _cross_checks(config: Config, ctx: _Context, preset: bool) -> None:
    """Rules that involve more than one setting. A setting refused above reads as its default, which the file
    does not say: a rule that involves one is skipped rather than judge that stand-in."""
    t, d = config.training, config.dataset
    refused = set(ctx.refused)

    def accepted(table: str, *keys: str) -> bool:
        return not any((table, key) in refused for key in keys)

    def dataset(key: str) -> str:
        return ctx.quote("dataset", key, getattr(d, key))

    warmup = ("lr_scheduler", "lr_warmup_steps")
    if accepted("training", *warmup) and t.lr_scheduler == "constant" and t.lr_warmup_steps > 0:
        ctx.add("training", "lr_warmup_steps",
                f"{ctx.quote('training', 'lr_warmup_steps', t.lr_warmup_steps)}: the constant scheduler cannot "
                "have warmup steps: set 0 or use constant_with_warmup")
    sides = ("min_bucket_reso", "max_bucket_reso")
    if accepted("dataset", *sides) and d.min_bucket_reso > d.max_bucket_reso:
        ctx.add("dataset", "min_bucket_reso",
                f"{dataset('min_bucket_reso')} is larger than max_bucket_reso ({dataset('max_bucket_reso')}): "
                "swap them")
    for key in sides:
        value, step = getattr(d, key), d.bucket_reso_steps
        if accepted("dataset", key, "bucket_reso_steps") and value % step:
            below = value // step * step
            ctx.add("dataset", key, f"{dataset(key)} is not a multiple of bucket_reso_steps "
                                    f"({dataset('bucket_reso_steps')}): use {max(below, step)} or {below + step}")
    inside = d.min_bucket_reso <= d.resolution <= d.max_bucket_reso
    if accepted("dataset", "resolution", "enable_bucket", *sides) and d.enable_bucket and not inside:
        ctx.add("dataset", "resolution",
                f"{dataset('resolution')} is outside the bucket sides {dataset('min_bucket_reso')}-"
                f"{dataset('max_bucket_reso')}: change min_bucket_reso or max_bucket_reso")
    if not config.preview.weights:
        ctx.add("preview", "weights", "empty: give at least one weight, e.g. [0.6, 0.8, 1.0]")
    if preset:
        return
    name = config.project.output_name
    if name and not OUTPUT_NAME_RE.match(name):
        ctx.add("project", "output_name",
                f"{ctx.quote('project', 'output_name', name)}: use letters, digits, '.', '-' and '_' only (it "
                "becomes a file name)")
    seen: dict[str, int] = {}
    for index, concept in enumerate(config.concepts):
        table = f"concepts#{index}"
        if not concept.name:
            continue  # already reported as missing
        shown = ctx.quote(table, "name", concept.name)
        if concept.name != concept.name.strip() or BAD_NAME_CHARS & set(concept.name) or not concept.name.isprintable():
            ctx.add(table, "name", f"{shown}: use a name without / \\ : * ? \" < > | or "
                                   "leading/trailing spaces (it becomes a folder name)")
        folded = concept.name.casefold()
        if folded in seen:
            ctx.add(table, "name", f"{shown} is also concepts[{seen[folded] + 1}]: give each concept "
                                   "its own name")
        seen.setdefault(folded, index)
    names = {c.name for c in config.concepts}
    for box_name in config.dataset.crop_boxes:
        if box_name.split("/", 1)[0] not in names:
            ctx.add("dataset.crop_boxes", box_name,
                    f"no concept named {_show(box_name.split('/', 1)[0])}: the key starts with a concept name")


def read_settings_text(path: Path) -> str:
    """The text of a loratui.toml or preset file (a UTF-8 BOM allowed); raise :class:`ProblemsError` with one
    line when it cannot be read, a bad byte named by line and column as an editor shows them."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProblemsError([Problem(str(path), "", "not found")]) from None
    except OSError as exc:
        raise ProblemsError([Problem(str(path), "", f"cannot be read ({exc.strerror or exc}): check that it is a "
                                                    "file you may read")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemsError([Problem(str(path), "", _not_utf8(exc))]) from None


def _not_utf8(exc: UnicodeDecodeError) -> str:
    data = bytes(exc.object)  # without the BOM, which the utf-8-sig decoder has already taken off
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    column = len(data[line_start:exc.start].decode("utf-8", errors="replace")) + 1
    return (f"not valid UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, column {column}): save the file "
            "as UTF-8 in your text editor")


def load_config(path: Path) -> Config:
    """Read and validate a loratui.toml; raise :class:`ProblemsError` listing every problem."""
    path = Path(path)
    text = read_settings_text(path)
    config, problems = parse_config(text, str(path))
    if problems:
        raise ProblemsError(problems)
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain dict in file order, every setting written out so the file documents itself."""
    data = asdict(config)
    return {section: data[section] for section in SECTIONS if section in data}


HEADER = (
    "# loratui project settings. `loratui check DIR` validates this file;\n"
    "# what each setting means: `loratui settings` (or `loratui settings training.epochs`).\n\n"
)


def dump_config(config: Config) -> str:
    return HEADER + tomli_w.dumps(config_to_dict(config))


def config_problems(config: Config, file: str = CONFIG_FILE) -> list[Problem]:
    """Every problem of ``config`` as the engine reports it for a file (types, limits, cross-checks): the wizard
    checks unsaved edits with this, so its messages are the ones `loratui check` prints. A field may hold what
    was typed (the text "abc" in an int field): it is judged as if written in the file."""
    return parse_config(dump_config(config), file)[1]


def save_config(config: Config, path: Path) -> None:
    """Write loratui.toml atomically (temp file + rename). An existing file keeps its comments, its order and
    any blank lines: only the values that changed are rewritten (a key's own trailing comment stays)."""
    path = Path(path)
    text = None
    if path.is_file():
        try:
            text = merge_into_text(path.read_bytes().decode("utf-8-sig"), config)
        except (OSError, UnicodeDecodeError):
            text = None  # unreadable now: a full rewrite is still better than losing the change
    atomic_write_text(path, text if text is not None else dump_config(config))


def merge_into_text(old_text: str, config: Config) -> str | None:
    """``config`` written into ``old_text`` (a loratui.toml) with its comments kept; None when ``old_text`` is not
    TOML that tomlkit can edit (the caller then writes the file afresh)."""
    import tomlkit  # only when saving: keeps `loratui --help` fast
    from tomlkit.exceptions import TOMLKitError

    try:
        document = tomlkit.parse(old_text)
    except (TOMLKitError, ValueError):
        return None
    for section, values in config_to_dict(config).items():
        if section == "concepts":
            _merge_concepts(document, values)
        elif isinstance(document.get(section), dict):
            _merge_table(document[section], values)
        else:
            document[section] = values
    return tomlkit.dumps(document)


def _merge_table(table: Any, values: dict[str, Any]) -> None:
    for key in [k for k in table if k not in values]:
        del table[key]  # a setting loratui no longer has (the file validated, so this is rare)
    for key, value in values.items():
        if key in table and _plain(table[key]) == value and _same_kinds(table[key], value):
            continue  # unchanged: its spelling (1e-4, not 0.0001) and comment stay as the user wrote them
        comment = getattr(getattr(table.get(key), "trivia", None), "comment", "")
        if isinstance(value, dict) and isinstance(table.get(key), dict):
            _merge_table(table[key], value)
            continue
        table[key] = value
        if comment:
            table[key].comment(comment.lstrip("#").strip())


def _merge_concepts(document: Any, concepts: list[dict[str, Any]]) -> None:
    import tomlkit

    old = document.get("concepts")
    if isinstance(old, list) and len(old) == len(concepts) and all(isinstance(t, dict) for t in old):
        for table, values in zip(old, concepts, strict=True):
            _merge_table(table, values)
        return
    array = tomlkit.aot()
    for values in concepts:
        array.append(tomlkit.item(values))
    document["concepts"] = array


def _plain(item: Any) -> Any:
    """A tomlkit value as plain Python (tomlkit's own types compare oddly for nested tables)."""
    unwrap = getattr(item, "unwrap", None)
    return unwrap() if unwrap else item


def _same_kinds(item: Any, value: Any) -> bool:
    """1 == 1.0 == True in Python, but not in the file: a bool stays a bool. A float setting the user wrote as a
    whole number (network_alpha = 16) is the same value, so it keeps its spelling."""
    plain = _plain(item)
    if type(plain) is type(value):
        return True
    return type(value) is float and type(plain) is int
