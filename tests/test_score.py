"""Cell scoring: subject tags and colours from the demo dataset, the demo tagger, damage, totals and suggestions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loratui.dataset.captions import caption_path, read_caption
from loratui.dataset.image_scan import dataset_pictures
from loratui.preview.score import (
    CellScore,
    Scorer,
    measure_damage,
    prompt_extra_tags,
    subject_tags,
    suggest,
)

SIZE = 256


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo project, prepared and tagged with its tiny tagger (whose tags follow the character's colours)."""
    from loratui.dataset.prepare import prepare_project
    from loratui.dataset.tagger import tag_dataset
    from loratui.demo.build import build_demo_project

    built = build_demo_project(tmp_path_factory.mktemp("score") / "demo")
    project = built.project
    prepare_project(project, workers=1)
    tag_dataset(project, project.load())
    return project


@pytest.fixture(scope="module")
def config(demo):
    return demo.load()


@pytest.fixture(scope="module")
def pictures(demo, config):
    return dataset_pictures(demo.concept_dir(config.concepts[0]))


@pytest.fixture(scope="module")
def scorer(demo, config):
    return Scorer.for_project(demo, config, "akari, blue sky")


@pytest.fixture(scope="module")
def colour_scorer(demo, config):
    return Scorer.for_project(demo, config, "akari", use_tagger=False)


@pytest.fixture(scope="module")
def new_drawing(tmp_path_factory):
    """The demo character drawn afresh (another seed): not one of the training pictures, same colours."""
    from loratui.demo.images import build_demo_images

    drawn = build_demo_images(tmp_path_factory.mktemp("drawn"), count=1, seed=7)[0]
    return Image.open(drawn.path).convert("RGB")


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _black() -> Image.Image:
    return Image.new("RGB", (SIZE, SIZE), (0, 0, 0))


def _noise(seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))


def _vertical(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    t = np.linspace(0.0, 1.0, SIZE)[:, None, None]
    pixels = np.asarray(top) * (1 - t) + np.asarray(bottom) * t
    return Image.fromarray(np.broadcast_to(pixels, (SIZE, SIZE, 3)).astype(np.uint8))


# --- the reference ------------------------------------------------------------------------------------------


def test_subject_tags_are_the_shared_descriptive_tags_of_the_captions(scorer):
    names = {tag.name for tag in scorer.subject_tags}
    assert {"red hair", "blue eyes", "yellow shirt", "akari (loratui)"} <= names
    # the trigger word, the framing tags and the background tags of a few pictures are not the subject
    assert not names & {"akari", "1girl", "solo", "simple background", "looking at viewer", "blue sky", "night"}
    assert all(0.3 <= tag.weight <= 1.0 for tag in scorer.subject_tags)


def test_subject_tags_share_threshold_spellings_ratings_and_triggers():
    captions = [["rishi", "red_hair", "sensitive", "solo"]] + [["rishi", "Red Hair", "smile"]] * 2 + \
        [["rishi", "red hair", "hat"]] * 6 + [[]]
    chosen = {tag.name: tag.weight for tag in subject_tags(captions, {"rishi"})}
    # 9 captioned files (the empty one does not count): red hair in all, smile in 2 (22%), hat in 6
    assert chosen == {"red_hair": 1.0, "hat": pytest.approx(6 / 9, abs=1e-4)}
    assert subject_tags([[], []], set()) == []


def test_prompt_extra_tags_leave_out_triggers_networks_weights_and_quality_words(config):
    extra = prompt_extra_tags("akari, (smile:1.2), masterpiece, <lora:akari:0.8>, {trigger}, [blue_sky], BREAK, "
                              "smile, best quality", config)
    assert extra == ["smile", "blue_sky"]
    assert prompt_extra_tags("akari", config) == []


# --- ranking ------------------------------------------------------------------------------------------------


def test_the_subject_in_its_colours_scores_above_black_and_noise(scorer, colour_scorer, pictures, new_drawing):
    black, noise = _black(), _noise()
    for judge in (scorer, colour_scorer):
        for subject in (new_drawing, _open(pictures[0])):
            good = judge.score(subject)
            assert good.damage == 0.0
            for bad in (judge.score(black), judge.score(noise)):
                assert good.total > bad.total
                assert good.resemblance > bad.resemblance
    assert scorer.score(new_drawing).resemblance > 0.7


def test_another_character_resembles_less_than_the_subject(scorer, colour_scorer, new_drawing):
    swapped = Image.fromarray(np.ascontiguousarray(np.asarray(new_drawing)[..., ::-1]))  # blue hair, cyan shirt
    for judge in (scorer, colour_scorer):
        assert judge.score(swapped).resemblance < judge.score(new_drawing).resemblance - 0.2


def test_found_tags_name_the_subject_tags_the_tagger_sees(scorer, new_drawing):
    found = scorer.score(new_drawing).found_tags
    assert {"red hair", "yellow shirt"} <= set(found)
    assert "red hair" not in scorer.score(_black()).found_tags


# --- flexibility --------------------------------------------------------------------------------------------


def test_flexibility_follows_the_prompts_extra_tag(scorer, pictures):
    outdoor = [p for p in pictures if "blue sky" in read_caption(caption_path(p)).tags]
    indoor = [p for p in pictures if "white background" in read_caption(caption_path(p)).tags]
    assert outdoor and indoor and scorer.extra_tags == ["blue sky"]
    assert scorer.score(_open(outdoor[0])).flexibility > 0.5 > scorer.score(_open(indoor[0])).flexibility


def test_flexibility_is_none_without_extra_tags(demo, config, new_drawing):
    plain = Scorer.for_project(demo, config, "akari")
    score = plain.score(new_drawing)
    assert score.flexibility is None and score.resemblance is not None
    assert plain.warnings == []


def test_a_prompt_tag_the_tagger_does_not_know_is_named_in_a_warning(demo, config, new_drawing):
    scorer = Scorer.for_project(demo, config, "akari, smile")
    assert any('"smile"' in warning and "vocabulary" in warning for warning in scorer.warnings)
    assert scorer.score(new_drawing).flexibility is None


def test_without_the_tagger_resemblance_uses_colours_and_a_warning_says_so(demo, config, new_drawing):
    broken = demo.load()
    broken.tagging.model = "models/no-such-tagger"
    scorer = Scorer.for_project(demo, broken, "akari, blue sky")
    assert len(scorer.warnings) == 1
    assert "tagger not available" in scorer.warnings[0] and "no-such-tagger" in scorer.warnings[0]
    good, bad = scorer.score(new_drawing), scorer.score(_black())
    assert good.flexibility is None and good.found_tags == []
    assert good.resemblance is not None and good.total > bad.total


def test_no_prepared_pictures_still_scores_damage(tmp_path, config):
    from loratui.project import Project

    empty = Project(tmp_path)
    scorer = Scorer.for_project(empty, config, "akari", use_tagger=False)
    assert any("no prepared pictures" in warning for warning in scorer.warnings)
    clean, broken = scorer.score(_vertical((20, 60, 200), (250, 240, 200))), scorer.score(_black())
    assert clean.resemblance is None and clean.total == 0.5
    assert broken.total == 0.0 and suggest([broken, clean]) == 1


# --- damage -------------------------------------------------------------------------------------------------


def _saturated() -> Image.Image:
    pixels = np.zeros((SIZE, SIZE, 3), np.uint8)
    pixels[: SIZE // 2, :, 0] = 255
    pixels[SIZE // 2:, : SIZE // 2, 1] = 255
    pixels[SIZE // 2:, SIZE // 2:] = (255, 0, 255)
    return Image.fromarray(pixels)


def _flat() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(np.clip(rng.normal(128, 2, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8))


@pytest.mark.parametrize(("make", "kind"), [
    (_black, "black"),
    (lambda: Image.new("RGB", (SIZE, SIZE), (255, 255, 255)), "white"),
    (_flat, "flat"),
    (lambda: Image.new("RGB", (SIZE, SIZE), (120, 90, 60)), "flat"),
    (_saturated, "saturated"),
    (_noise, "noisy"),
])
def test_damage_kinds_are_detected(make, kind):
    damage, kinds = measure_damage(make())
    assert kinds == [kind] and damage >= 0.9


def test_the_dataset_pictures_and_smooth_pictures_are_clean(pictures, new_drawing):
    rng = np.random.default_rng(2)
    coarse = Image.fromarray(rng.uniform(0, 255, (8, 8)).astype(np.float32), "F").resize((SIZE, SIZE),
                                                                                      Image.Resampling.BICUBIC)
    value = np.asarray(coarse)
    photo_like = np.clip(np.stack([value, value * 0.8 + 30, value * 0.6 + 50], axis=2)
                         + rng.normal(0, 3, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    smooth = [_vertical((86, 156, 236), (196, 228, 252)), _vertical((0, 0, 0), (255, 255, 255)),
              _vertical((255, 214, 232), (222, 208, 250)), Image.fromarray(photo_like), new_drawing]
    for picture in [_open(p) for p in pictures] + smooth:
        assert measure_damage(picture) == (0.0, [])


def test_noise_over_a_picture_is_damage_and_lowers_the_total(scorer, new_drawing):
    pixels = np.asarray(new_drawing, dtype=np.float32)
    noisy = np.clip(pixels + np.random.default_rng(3).normal(0, 60, pixels.shape), 0, 255).astype(np.uint8)
    score = scorer.score(Image.fromarray(noisy))
    assert "noisy" in score.damage_kinds and score.damage >= 0.5
    assert score.total < scorer.score(new_drawing).total


# --- suggest and the stored form ----------------------------------------------------------------------------


def _cell(total: float, damage: float = 0.0) -> CellScore:
    return CellScore(0.5, None, damage, ["noisy"] if damage else [], total, [])


def test_suggest_picks_the_best_undamaged_cell():
    assert suggest([_cell(0.4), None, _cell(0.9, damage=0.5), _cell(0.6), _cell(0.6)]) == 3
    assert suggest([_cell(0.3, damage=0.49), _cell(0.2)]) == 0
    assert suggest([None, _cell(0.9, damage=0.8)]) is None
    assert suggest([]) is None


def test_scores_round_trip_through_json(scorer, new_drawing):
    score = scorer.score(new_drawing)
    stored = json.loads(json.dumps(score.to_dict()))
    assert set(stored) == {"resemblance", "flexibility", "damage", "damage_kinds", "total", "found_tags"}
    assert CellScore.from_dict(stored) == score
    damaged = scorer.score(_black())
    assert CellScore.from_dict(json.loads(json.dumps(damaged.to_dict()))) == damaged
    with pytest.raises(ValueError):
        CellScore.from_dict({"resemblance": 0.5})
    with pytest.raises(ValueError):
        CellScore.from_dict({"damage": "bad", "total": 0.1})
