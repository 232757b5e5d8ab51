"""loratui.toml: round trip, and one clear line for each kind of bad value."""

from __future__ import annotations

import dataclasses

import pytest

from loratui.config import SECTIONS, Concept, Config, default_of, help_for
from loratui.config_io import dump_config, load_config, parse_config, save_config
from loratui.errors import ProblemsError


def problems_of(text: str) -> list[str]:
    _, problems = parse_config(text, "loratui.toml")
    return [str(p) for p in problems]


def one_problem(text: str) -> str:
    found = problems_of(text)
    assert len(found) == 1, found
    return found[0]


def test_defaults_follow_the_beginner_workflow():
    config = Config()
    t = config.training
    assert (t.epochs, t.batch_size, t.network_dim, t.network_alpha) == (10, 1, 32, 16.0)
    # AdamW, not the beginner page's AdamW8bit: a default must work without the optional bitsandbytes package.
    assert (t.unet_lr, t.text_encoder_lr, t.optimizer, t.lr_scheduler) == (1e-4, 1e-5, "AdamW",
                                                                          "cosine_with_restarts")
    assert (t.save_every_n_epochs, t.clip_skip, t.seed, t.save_precision) == (2, 2, 1337, "fp16")
    assert config.dataset.resolution == 512
    assert (config.tagging.general_threshold, config.tagging.character_threshold) == (0.35, 0.85)
    assert config.preview.weights == [0.6, 0.7, 0.8, 0.9, 1.0]
    assert Concept().repeats == 5


def test_every_setting_has_help_and_a_default():
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert len(help_for(section, f.name)) > 20, f"{section}.{f.name}"
            default_of(section, f.name)


def test_round_trip_keeps_every_value():
    config = Config()
    config.project.base_model = "/models/anything-v5.safetensors"
    config.project.output_name = "rishi"
    config.concepts = [Concept(name="RishiNaruto", source="pics", repeats=8, trigger="rishi naruto",
                               exclude=["bad.png"]), Concept(name="Sasuke", source="/abs/sasuke")]
    config.dataset.resolution = 768
    config.dataset.crop = "none"
    config.dataset.crop_boxes = {"RishiNaruto/sub dir/ä 1.png": [10, 20, 522, 532]}
    config.tagging.deleted_tags = ["orange eyeshadow", "forehead protector"]
    config.training.keep_tokens = 2
    config.training.network_alpha = 8.5
    config.training.unet_lr = 3e-4
    config.preview.width = 512
    config.preview.weights = [0.5, 1.0]
    parsed, problems = parse_config(dump_config(config), "loratui.toml")
    assert problems == []
    assert parsed == config


def test_save_and_load_atomically(tmp_path):
    path = tmp_path / "loratui.toml"
    path.write_text("old")
    config = Config(concepts=[Concept(name="a", source="b")])
    save_config(config, path)
    assert load_config(path) == config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loratui.toml"]  # no temp file left behind


def test_load_raises_with_every_problem(tmp_path):
    path = tmp_path / "loratui.toml"
    path.write_text("[training]\nepochs = 0\nbatch_size = 'x'\n")
    with pytest.raises(ProblemsError) as err:
        load_config(path)
    assert [p.key for p in err.value.problems] == ["training.epochs", "training.batch_size"]


def test_integers_are_accepted_where_numbers_are_expected():
    config, problems = parse_config("[training]\nnetwork_alpha = 16\nunet_lr = 1\n", "f")
    assert problems == []
    assert config.training.network_alpha == 16.0 and isinstance(config.training.network_alpha, float)


def test_unknown_key_names_file_line_and_suggestion():
    line = one_problem("[training]\nepochs = 3\nepoch = 4\n")
    assert line == "loratui.toml:3: training.epoch: unknown setting (did you mean epochs?)"


def test_unknown_kohya_key_points_to_ours():
    assert one_problem("[training]\nmax_train_epochs = 4\n").endswith("unknown setting: loratui calls it epochs")


def test_unknown_section():
    expected = "loratui.toml:1: trainig: unknown section (did you mean [training]?)"
    assert one_problem("[trainig]\nepochs = 3\n") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[training]\nepochs = "ten"\n', 'training.epochs: must be a whole number, not text ("ten")'),
        ("[training]\nepochs = 2.5\n", "training.epochs: must be a whole number, not a number (2.5)"),
        ("[training]\nflip_aug = 1\n", "training.flip_aug: must be true or false, not a whole number (1)"),
        ("[training]\nunet_lr = true\n", "training.unet_lr: must be a number, not true/false (true)"),
        ("[project]\nbase_model = 5\n", "project.base_model: must be text in quotes, not a whole number (5)"),
        ('[preview]\nweights = [0.5, "x"]\n', 'preview.weights[1]: must be a number, not text ("x")'),
        ("[tagging]\ndeleted_tags = \"hat\"\n", 'tagging.deleted_tags: must be a list of texts in quotes, not text'),
        ('[training]\nkeep_tokens = "all"\n', 'training.keep_tokens: must be a whole number or "auto", not text'),
    ],
)
def test_wrong_types(text, expected):
    assert expected in one_problem(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[training]\nepochs = 0\n", "training.epochs: 0 is too small: use 1 or more"),
        ("[tagging]\ngeneral_threshold = 1.5\n", "tagging.general_threshold: 1.5 is too large: use 1.0 or less"),
        ("[training]\nkeep_tokens = -1\n", "training.keep_tokens: -1 is too small: use 0 or more"),
        ('[training]\noptimizer = "adam"\n', 'training.optimizer: "adam" is not one of AdamW, AdamW8bit, Lion'),
        ('[dataset]\ncrop = "Focal"\n', '(did you mean "focal"?)'),
        ("[preview]\nwidth = 500\n", "preview.width: 500 is not a multiple of 8: use 496 or 504"),
    ],
)
def test_out_of_range_values(text, expected):
    assert expected in one_problem(text)


@pytest.mark.parametrize(("value", "nearest"), [(500, "448 or 512"), (1000, "960 or 1024"), (520, "512 or 576"),
                                                (100, "64 or 128")])
def test_resolution_not_a_multiple_of_64_names_the_nearest_valid_values(value, nearest):
    text = f"[dataset]\nresolution = {value}\nmin_bucket_reso = 64\n"
    assert one_problem(text) == f"loratui.toml:2: dataset.resolution: {value} is not a multiple of 64: use {nearest}"


def test_auto_values():
    config, problems = parse_config('[training]\nkeep_tokens = "auto"\n[preview]\nheight = "auto"\n', "f")
    assert problems == [] and config.training.keep_tokens == "auto" and config.preview.height == "auto"


def test_cross_field_rules():
    assert "constant scheduler cannot have warmup" in one_problem(
        '[training]\nlr_scheduler = "constant"\nlr_warmup_steps = 10\n')
    assert "larger than max_bucket_reso" in problems_of("[dataset]\nmin_bucket_reso = 1024\nmax_bucket_reso = 512\n")[0]
    expected = "not a multiple of bucket_reso_steps (64): use 256 or 320"
    assert expected in one_problem("[dataset]\nmin_bucket_reso = 300\n")
    assert "outside the bucket sides 256-1024" in one_problem("[dataset]\nresolution = 2048\n")
    assert "empty: give at least one weight" in one_problem("[preview]\nweights = []\n")


def test_concepts_are_checked_one_by_one():
    text = """
[[concepts]]
name = "a/b"
source = "x"

[[concepts]]
source = "y"
repeats = 0

[[concepts]]
name = "A/B"
source = "z"
"""
    found = problems_of(text)
    assert 'loratui.toml:3: concepts[1].name: "a/b": use a name without' in found[2]
    assert found[0].startswith("loratui.toml:8: concepts[2].repeats: 0 is too small")
    assert found[1].startswith("loratui.toml:6: concepts[2].name: missing")
    assert 'concepts[3].name: "A/B": use a name without' in found[3]
    assert 'concepts[3].name: "A/B" is also concepts[1]' in found[4]  # names compare case-insensitively
    assert len(found) == 5


def test_duplicate_concept_names():
    text = '[[concepts]]\nname = "Rishi"\nsource = "a"\n[[concepts]]\nname = "rishi"\nsource = "b"\n'
    assert 'concepts[2].name: "rishi" is also concepts[1]' in one_problem(text)


def test_crop_boxes_are_validated():
    text = """
[[concepts]]
name = "rishi"
source = "pics"

[dataset.crop_boxes]
"rishi/a.png" = [0, 0, 512, 512]
"rishi/b.png" = [10, 10, 5, 600]
"rishi/c.png" = [1, 2, 3]
"nobody/d.png" = [0, 0, 10, 10]
"e.png" = [0, 0, 10, 10]
"""
    found = problems_of(text)
    assert len(found) == 4, found
    assert 'dataset.crop_boxes."rishi/b.png": [10, 10, 5, 600] is not a box' in found[0]
    assert "must be [left, top, right, bottom]" in found[1]
    assert 'name the picture as "concept/path' in found[2]
    assert 'no concept named "nobody"' in found[3]


def test_output_name_must_be_a_plain_file_name():
    assert "use letters, digits" in one_problem('[project]\noutput_name = "my lora!"\n')


def test_broken_toml_is_one_line():
    line = one_problem("[training]\nepochs = = 3\n")
    assert line.startswith("loratui.toml: not valid TOML:") and "line 2" in line and "\n" not in line


def test_many_problems_are_all_reported():
    text = '[training]\nepochs = -1\nbatch_size = "2"\nlearnrate = 1\n[dataset]\nresolution = 513\n'
    keys = [p.split(": ")[1] for p in problems_of(text)]
    assert keys == ["training.epochs", "training.batch_size", "training.learnrate", "dataset.resolution"]


def test_saving_keeps_the_users_comments_order_and_spelling(tmp_path):
    from loratui.config_io import load_config, save_config

    path = tmp_path / "loratui.toml"
    path.write_text(
        "# my notes about this run\n"
        "[project]\n"
        'base_model = "/models/anything.safetensors"  # the one I draw with\n\n'
        "[[concepts]]\n"
        'name = "akari"\nsource = "/pictures"\n'
        "repeats = 5 # five is fine\n\n"
        "[training]\n"
        "# a longer run next time\n"
        "epochs = 10\n"
        "unet_lr = 1e-4\n"
        "network_alpha = 16\n",
        encoding="utf-8",
    )
    config = load_config(path)
    config.training.epochs = 20
    config.concepts[0].repeats = 6
    save_config(config, path)
    text = path.read_text(encoding="utf-8")
    assert load_config(path) == config
    for kept in ("# my notes about this run\n", "# the one I draw with", "# a longer run next time\nepochs = 20\n",
                 "repeats = 6 # five is fine", "unet_lr = 1e-4\n", "network_alpha = 16\n"):
        assert kept in text
    assert text.index("[project]") < text.index("[[concepts]]") < text.index("[training]")


def test_saving_a_file_that_lost_a_concept_rewrites_the_concepts(tmp_path):
    from loratui.config import Concept
    from loratui.config_io import load_config, save_config

    path = tmp_path / "loratui.toml"
    path.write_text('# top\n[[concepts]]\nname = "a"\nsource = "/a"\n', encoding="utf-8")
    config = load_config(path)
    config.concepts.append(Concept(name="b", source="/b", repeats=3))
    save_config(config, path)
    assert load_config(path) == config and path.read_text(encoding="utf-8").startswith("# top\n")
