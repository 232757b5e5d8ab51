"""A broken loratui.toml is reported as it is: a syntax error alone, values quoted as the file writes them, a bad
byte by line and column — never a problem made up from the defaults that stand in for what could not be read."""

from __future__ import annotations

import json

import pytest

from loratui.cli import main
from loratui.config_io import load_config, parse_config, read_settings_text
from loratui.errors import ProblemsError
from loratui.project import create_project


def problems_of(text: str) -> list[str]:
    _, problems = parse_config(text, "loratui.toml")
    return [str(p) for p in problems]


@pytest.fixture
def project(tmp_path):
    """A project that checks clean: a picture in its source, an SD1 single file (a header with a UNet and a CLIP
    key is all `check` reads) and the demo's bucket sides 64-256."""
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"")
    header = json.dumps({key: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for key in (
        "model.diffusion_model.out.2.bias", "cond_stage_model.transformer.text_model.final_layer_norm.bias")})
    model = tmp_path / "base.safetensors"
    model.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(4))
    created, config = create_project(tmp_path / "proj", tmp_path / "pics", "akari", base_model=str(model))
    config.dataset.resolution, config.dataset.min_bucket_reso, config.dataset.max_bucket_reso = 128, 64, 256
    created.save(config)
    assert main(["check", str(created.root)]) == 0
    return created


def check_lines(project, capsys) -> list[str]:
    capsys.readouterr()
    assert main(["check", str(project.root)]) == 2
    return capsys.readouterr().out.splitlines()


def replace_line(project, old: str, new: str) -> int:
    """Replace a line of loratui.toml; return its number."""
    lines = project.config_path.read_text().splitlines()
    number = lines.index(old)
    lines[number] = new
    project.config_path.write_text("\n".join(lines) + "\n")
    return number + 1


def test_invalid_toml_is_reported_alone(project, capsys):
    number = replace_line(project, "resolution = 128", "resolution = = 128")
    assert check_lines(project, capsys) == [
        f"{project.config_path}: not valid TOML: Invalid value (at line {number}, column 14)",
        f"1 problem in {project.root}"]


def test_a_value_refused_is_not_judged_again_as_its_default(project, capsys):
    """resolution = 500 is not a multiple of 64; the default 512 that stands in for it is outside the project's
    bucket sides, which the file never said."""
    number = replace_line(project, "resolution = 128", "resolution = 500")
    assert check_lines(project, capsys)[-2:] == [
        f"{project.config_path}:{number}: dataset.resolution: 500 is not a multiple of 64: use 448 or 512",
        f"1 problem in {project.root}"]


def test_a_base_model_of_the_wrong_type_is_not_also_not_set(project, capsys):
    number = replace_line(project, f'base_model = "{project.root.parent / "base.safetensors"}"', "base_model = 5")
    assert check_lines(project, capsys) == [
        f"{project.config_path}:{number}: project.base_model: must be text in quotes, not a whole number (5)",
        f"1 problem in {project.root}"]


@pytest.mark.parametrize(("line", "expected"), [
    ("network_alpha = 0", "training.network_alpha: 0 is too small: use 0.001 or more"),
    ("unet_lr = 2e1  # far too high", "training.unet_lr: 2e1 is too large: use 10.0 or less"),
    ("network_alpha = 1_500", "training.network_alpha: 1_500 is too large: use 1024 or less"),
    ("optimizer = 'adam'", "training.optimizer: 'adam' is not one of AdamW, AdamW8bit, Lion, Prodigy (did you "
                           'mean "AdamW"?)'),
    ('optimizer = "x#y" # a comment', 'training.optimizer: "x#y" is not one of AdamW, AdamW8bit, Lion, Prodigy'),
    ("epochs = 2.50", "training.epochs: must be a whole number, not a number (2.50)"),
])
def test_values_are_quoted_as_the_file_writes_them(line, expected):
    assert problems_of(f"[training]\n{line}\n") == [f"loratui.toml:2: {expected}"]


def test_a_rule_about_two_settings_quotes_both_as_written():
    assert problems_of("[dataset]\nmin_bucket_reso = 0x400\nmax_bucket_reso = 5_12\n")[0] == (
        "loratui.toml:2: dataset.min_bucket_reso: 0x400 is larger than max_bucket_reso (5_12): swap them")


def test_a_rule_is_skipped_when_one_of_its_settings_was_refused():
    assert problems_of("[dataset]\nmin_bucket_reso = 1088\nmax_bucket_reso = 9000\n") == [
        "loratui.toml:3: dataset.max_bucket_reso: 9000 is too large: use 8192 or less"]
    assert problems_of('[training]\nlr_scheduler = "flat"\nlr_warmup_steps = 10\n')[0].startswith(
        'loratui.toml:2: training.lr_scheduler: "flat" is not one of')
    assert len(problems_of('[training]\nlr_scheduler = "flat"\nlr_warmup_steps = 10\n')) == 1


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_byte_that_is_not_utf8_is_named_by_line_and_column(project, capsys, bom):
    data = project.config_path.read_bytes().replace(b'name = "akari"', b'name = "ak\xe4ri"', 1)
    project.config_path.write_bytes(bom + data)
    number = data.split(b"\n").index(b'name = "ak\xe4ri"') + 1
    line = (f"{project.config_path}: not valid UTF-8 text (byte 0xe4 at line {number}, column 11): save the file "
            "as UTF-8 in your text editor")
    assert check_lines(project, capsys) == [line, f"1 problem in {project.root}"]
    with pytest.raises(ProblemsError) as raised:
        load_config(project.config_path)
    assert str(raised.value) == line
    assert main(["estimate", str(project.root)]) == 2
    assert capsys.readouterr().err == f"loratui: {line}\n"


def test_a_column_counts_characters_not_bytes(tmp_path):
    """The column an editor shows: "ä" and "ö" are two bytes each in UTF-8 but one column."""
    file = tmp_path / "loratui.toml"
    file.write_bytes('[project]\nname = "äö'.encode() + b'\xff"\n')
    with pytest.raises(ProblemsError) as raised:
        read_settings_text(file)
    assert "(byte 0xff at line 2, column 11)" in str(raised.value)
