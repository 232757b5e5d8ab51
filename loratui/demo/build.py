"""Builds the demo project: made-up pictures, a tiny SD1.5 single-file model, a tiny tagger, and loratui.toml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loratui.config import Config
from loratui.config_io import CONFIG_FILE
from loratui.demo.choices import FEATURE_TAGS, LORA_FOLDER, write_demo_choices
from loratui.errors import LoratuiError
from loratui.hf_logging import quiet_hf_libraries
from loratui.project import Project, create_project

CONCEPT = "akari"
TRIGGER = "akari"


@dataclass
class DemoProject:
    project: Project
    pictures_dir: Path
    picture_count: int
    base_model: Path
    base_model_config: Path
    tagger_dir: Path
    concept: str = CONCEPT


def build_demo_project(root: Path, progress: Callable[[str], None] = lambda step: None) -> DemoProject:
    """Make ``root`` a ready-to-use project; deterministic, offline, a few seconds on a CPU."""
    root = Path(root)
    if (root / CONFIG_FILE).exists():
        raise LoratuiError(f"{root} is already a loratui project: open it, or give another folder to `loratui demo`")
    from loratui.demo.images import build_demo_images
    from loratui.demo.tagger_model import build_tiny_tagger

    pictures = root / "pictures"
    progress("drawing the made-up pictures")
    images = build_demo_images(pictures)
    progress("building the tiny WD14-style tagger")
    tagger = build_tiny_tagger(root / "models" / "tiny-wd14-tagger")
    progress("building the tiny SD1.5 model (single .safetensors file + its config folder)")
    quiet_hf_libraries()
    from loratui.demo.single_file import build_tiny_sd15_single_file  # imports torch: keep it last and lazy

    model = root / "models" / "tiny-sd15.safetensors"
    model_config = root / "models" / "tiny-sd15-config"
    build_tiny_sd15_single_file(model, model_config)

    progress("writing the project settings")
    project, config = create_project(root, pictures, CONCEPT, repeats=2, trigger=TRIGGER, base_model=str(model))
    _tune_for_tiny_models(config, model_config, tagger)
    project.save(config)
    # A stand-in WebUI beside the project, so the install step has a Lora folder to find on any machine.
    (root / LORA_FOLDER).mkdir(parents=True, exist_ok=True)
    # The seed article's choice, made ahead for the wizard: the trigger word carries the character's own features.
    # The Tags step marks them DEL once the tagger found them, so ^n alone writes a sensible dataset.
    write_demo_choices(project, FEATURE_TAGS)
    return DemoProject(project, pictures, len(images), model, model_config, tagger)


def _tune_for_tiny_models(config: Config, model_config: Path, tagger: Path) -> None:
    """Settings that fit the tiny models and a CPU: small pictures, few steps, no 8-bit optimizer."""
    config.project.base_model_config = f"models/{model_config.name}"
    config.tagging.model = f"models/{tagger.name}"
    d, t, p = config.dataset, config.training, config.preview
    d.resolution, d.min_bucket_reso, d.max_bucket_reso = 128, 64, 256
    t.epochs, t.save_every_n_epochs, t.batch_size = 4, 2, 2
    t.network_dim, t.network_alpha = 4, 4.0
    t.unet_lr, t.text_encoder_lr = 1e-3, 1e-4
    t.optimizer, t.mixed_precision, t.lr_scheduler = "AdamW", "no", "constant"
    p.steps, p.cfg_scale = 4, 5.0
    # The tiny tagger knows no "smile"; "night" is something it can see (dark skies), so the preview's
    # flexibility score is measured on the demo too.
    p.prompt = "{trigger}, night"
