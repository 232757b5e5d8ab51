"""`loratui install`: the atomic copy, the A1111 card, refusals, which checkpoint, and finding Lora folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from loratui.cli import main
from loratui.config_io import load_config
from loratui.errors import LoratuiError
from loratui.preview.install import (
    LoraCard,
    find_lora_folders,
    free_name,
    install_lora,
)
from loratui.project import create_project

CARD_KEYS = {"description", "sd version", "activation text", "preferred weight", "negative text", "notes"}


def write_lora(path: Path, *, epoch: int | None = 2, sdxl: bool = False, seed: int = 0) -> Path:
    """A small kohya-format LoRA file (one module), as the trainer writes them: keys, alpha and ss_ metadata."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    module = ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" if sdxl
              else "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q")
    tensors = {
        f"{module}.lora_down.weight": rng.standard_normal((4, 32)).astype(np.float16),
        f"{module}.lora_up.weight": rng.standard_normal((32, 4)).astype(np.float16),
        f"{module}.alpha": np.array(2.0, dtype=np.float16),
    }
    metadata = {"ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v1", "ss_num_epochs": "4",
                "ss_sd_model_name": "tiny-sd15.safetensors"}
    if epoch is not None:
        metadata |= {"ss_epoch": str(epoch), "ss_steps": str(epoch * 12)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata)
    return path


@pytest.fixture
def project(tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    project, _ = create_project(tmp_path / "akari", pictures, "akari", trigger="akari, red hair")
    for epoch, seed in ((2, 1), (4, 2)):
        write_lora(project.output_dir / f"akari-{epoch:06d}.safetensors", epoch=epoch, seed=seed)
    write_lora(project.output_dir / "akari.safetensors", epoch=None, seed=3)
    return project


@pytest.fixture
def lora_dir(tmp_path):
    folder = tmp_path / "webui" / "models" / "Lora"
    folder.mkdir(parents=True)
    return folder


def install(project, lora_dir, *extra: str) -> int:
    return main(["install", str(project.root), "--to", str(lora_dir), *extra])


def write_grid(project, **cells) -> None:
    grid = {"version": 1, "png": "preview/grid.png", "cells": [],
            "settings": {"prompt": "akari, smile", "negative_prompt": "lowres, blurry"},
            "suggestion": None, "picked": None} | cells
    (project.preview_dir / "grid.json").write_text(json.dumps(grid), encoding="utf-8")


def _cell(epoch: int, weight: float, score: float | None = None) -> dict:
    cell = {"checkpoint": f"output/akari-{epoch:06d}.safetensors", "epoch": epoch, "weight": weight}
    return cell | ({"score": score} if score is not None else {})


# --- the copy and the card ----------------------------------------------------------------------------------


def test_install_copies_the_file_and_writes_the_card(project, lora_dir, capsys):
    assert install(project, lora_dir) == 0
    out = capsys.readouterr().out
    installed = lora_dir / "akari.safetensors"
    assert installed.read_bytes() == (project.output_dir / "akari.safetensors").read_bytes()
    card = json.loads((lora_dir / "akari.json").read_text(encoding="utf-8"))
    assert set(card) == CARD_KEYS
    config = load_config(project.config_path)
    assert card["sd version"] == "SD1"
    assert card["activation text"] == "akari, red hair"
    assert card["preferred weight"] == 1.0 and isinstance(card["preferred weight"], float)
    assert card["negative text"] == config.preview.negative_prompt
    assert "trained with loratui" in card["notes"] and "tiny-sd15.safetensors" in card["notes"]
    assert "akari" in card["description"]
    assert f"Installed {installed} (" in out and "output/akari.safetensors" in out and "final file" in out
    assert "In A1111/Forge: <lora:akari:1> akari, red hair" in out
    assert "In ComfyUI: LoraLoader \u2192 akari.safetensors, strength 1" in out
    assert not [p for p in lora_dir.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_a_second_install_is_refused_and_force_replaces(project, lora_dir, capsys):
    assert install(project, lora_dir) == 0
    capsys.readouterr()
    two_days_ago = os.stat(lora_dir / "akari.safetensors").st_mtime - 2 * 86400 - 60
    os.utime(lora_dir / "akari.safetensors", (two_days_ago, two_days_ago))
    assert install(project, lora_dir, "--checkpoint", "akari-000002.safetensors") == 2
    err = capsys.readouterr().err
    assert f"{lora_dir / 'akari.safetensors'} already exists (1 KB, 2 days old)" in err
    assert "--name akari-2" in err and "--force" in err and "Traceback" not in err
    assert (lora_dir / "akari.safetensors").read_bytes() == (project.output_dir / "akari.safetensors").read_bytes()

    (lora_dir / "akari-2.safetensors").write_bytes(b"taken")
    assert install(project, lora_dir) == 2
    assert "--name akari-3" in capsys.readouterr().err

    assert install(project, lora_dir, "--checkpoint", "akari-000002.safetensors", "--weight", "0.7", "--force") == 0
    assert "Replaced" in capsys.readouterr().out
    new = (project.output_dir / "akari-000002.safetensors").read_bytes()
    assert (lora_dir / "akari.safetensors").read_bytes() == new
    card = json.loads((lora_dir / "akari.json").read_text(encoding="utf-8"))
    assert card["preferred weight"] == 0.7 and "epoch 2 of 4" in card["description"]


def test_keep_both_installs_beside_the_existing_file_under_a_free_name(project, lora_dir, capsys):
    assert install(project, lora_dir) == 0
    first = (lora_dir / "akari.safetensors").read_bytes()
    first_card = (lora_dir / "akari.json").read_text(encoding="utf-8")
    capsys.readouterr()
    assert install(project, lora_dir, "--checkpoint", "akari-000002.safetensors", "--keep-both") == 0
    out = capsys.readouterr().out
    assert "akari.safetensors is already there: kept it, and installed this one as akari-2.safetensors" in out
    assert "<lora:akari-2:1>" in out
    assert (lora_dir / "akari.safetensors").read_bytes() == first  # the old one is untouched, card too
    assert (lora_dir / "akari.json").read_text(encoding="utf-8") == first_card
    assert (lora_dir / "akari-2.safetensors").read_bytes() == \
        (project.output_dir / "akari-000002.safetensors").read_bytes()
    assert "epoch 2 of 4" in json.loads((lora_dir / "akari-2.json").read_text(encoding="utf-8"))["description"]
    # a third keeps both again; with nothing in the way it is a plain install under the name asked for
    assert install(project, lora_dir, "--keep-both", "--json") == 0
    assert json.loads(capsys.readouterr().out)["renamed_from"] == "akari"
    assert (lora_dir / "akari-3.safetensors").is_file()
    assert install(project, lora_dir, "--name", "other", "--keep-both", "--json") == 0
    done = json.loads(capsys.readouterr().out)
    assert done["path"] == str(lora_dir / "other.safetensors") and done["renamed_from"] is None


def test_keep_both_and_force_cannot_be_given_together(project, lora_dir, capsys):
    with pytest.raises(SystemExit):
        install(project, lora_dir, "--force", "--keep-both")
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(LoratuiError, match="choose one"):
        install_lora(project.output_dir / "akari.safetensors", lora_dir, "akari", card=None, force=True,
                     keep_both=True)
    assert list(lora_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["../evil", "a/b", "my lora", ".hidden", "..", "akari!", "\u00e9t\u00e9"])
def test_bad_names_are_refused(project, lora_dir, capsys, name):
    assert install(project, lora_dir, "--name", name) == 2
    assert "letters, digits" in capsys.readouterr().err
    assert list(lora_dir.iterdir()) == [] and not (lora_dir.parent / "evil.safetensors").exists()


def test_name_json_and_no_card(project, lora_dir, capsys):
    assert install(project, lora_dir, "--name", "akari_v1.2.safetensors", "--no-card", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["path"] == str(lora_dir / "akari_v1.2.safetensors") and result["card"] is None
    assert result["family"] == "sd15" and result["weight"] == 1.0 and result["name"] == "akari_v1.2"
    assert sorted(p.name for p in lora_dir.iterdir()) == ["akari_v1.2.safetensors"]


def test_sdxl_lora_card_says_sdxl(project, tmp_path, lora_dir):
    source = write_lora(tmp_path / "xl.safetensors", sdxl=True)
    result = install_lora(source, lora_dir, "xl", card=LoraCard(sd_version="SDXL", activation_text="akari"))
    assert result.family == "sdxl" and result.size == source.stat().st_size and not result.replaced
    assert json.loads(result.card_path.read_text(encoding="utf-8"))["sd version"] == "SDXL"


def test_folder_is_made_only_when_its_parent_exists(project, tmp_path, capsys):
    assert install(project, tmp_path / "ComfyUI" / "models" / "loras") == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "ComfyUI" / "models").mkdir(parents=True)
    assert install(project, tmp_path / "ComfyUI" / "models" / "loras") == 0
    assert (tmp_path / "ComfyUI" / "models" / "loras" / "akari.safetensors").is_file()


def test_a_file_that_is_not_a_lora_is_refused(project, tmp_path, lora_dir):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(LoratuiError, match="not a .safetensors file"):
        install_lora(bogus, lora_dir, "bogus", card=None)
    with pytest.raises(LoratuiError, match="no such file"):
        install_lora(tmp_path / "missing.safetensors", lora_dir, "x", card=None)
    assert list(lora_dir.iterdir()) == []


def test_free_name_counts_up(lora_dir):
    assert free_name(lora_dir, "akari") == "akari-2"
    (lora_dir / "akari-2.safetensors").write_bytes(b"")
    (lora_dir / "akari-3.safetensors").write_bytes(b"")
    assert free_name(lora_dir, "akari") == "akari-4"


# --- which checkpoint ---------------------------------------------------------------------------------------


def test_the_picked_cell_wins_with_its_weight(project, lora_dir, capsys):
    write_grid(project, picked=_cell(2, 0.7), suggestion=_cell(4, 0.8, score=0.71))
    assert install(project, lora_dir) == 0
    out = capsys.readouterr().out
    assert "output/akari-000002.safetensors: picked in the preview" in out and "<lora:akari:0.7>" in out
    assert (lora_dir / "akari.safetensors").read_bytes() == \
        (project.output_dir / "akari-000002.safetensors").read_bytes()
    card = json.loads((lora_dir / "akari.json").read_text(encoding="utf-8"))
    assert card["preferred weight"] == 0.7 and "akari, smile" in card["notes"]
    assert card["negative text"] == "lowres, blurry"


def test_the_suggestion_is_used_when_nothing_is_picked(project, lora_dir, capsys):
    write_grid(project, suggestion=_cell(4, 0.8, score=0.71))
    assert install(project, lora_dir) == 0
    out = capsys.readouterr().out
    assert "output/akari-000004.safetensors: suggested by the preview's scores (score 0.71)" in out
    assert "strength 0.8" in out


def test_weight_flag_and_checkpoint_flag_override_the_grid(project, lora_dir, capsys):
    write_grid(project, picked=_cell(2, 0.7))
    path = project.output_dir / "akari-000004.safetensors"
    assert install(project, lora_dir, "--checkpoint", str(path), "--weight", "0.9") == 0
    out = capsys.readouterr().out
    assert "given with --checkpoint" in out and "<lora:akari:0.9>" in out
    assert (lora_dir / "akari.safetensors").read_bytes() == path.read_bytes()


def test_a_picked_checkpoint_that_is_gone_is_an_error(project, lora_dir, capsys):
    write_grid(project, picked=_cell(6, 0.7))
    assert install(project, lora_dir) == 2
    assert "akari-000006.safetensors is gone" in capsys.readouterr().err


def test_a_broken_grid_file_falls_back_to_the_final_file(project, lora_dir, capsys):
    (project.preview_dir / "grid.json").write_text("{not json", encoding="utf-8")
    assert install(project, lora_dir) == 0
    assert "final file" in capsys.readouterr().out


def test_missing_checkpoints_are_exit_2(project, lora_dir, capsys):
    assert install(project, lora_dir, "--checkpoint", "akari-000009.safetensors") == 2
    err = capsys.readouterr().err
    assert "akari-000009.safetensors: no such file" in err and "akari-000002.safetensors" in err
    (project.output_dir / "akari.safetensors").unlink()
    assert install(project, lora_dir) == 2
    err = capsys.readouterr().err
    assert "akari.safetensors: no such file" in err and "--checkpoint FILE" in err and "Traceback" not in err


# --- where to install ---------------------------------------------------------------------------------------


def test_find_lora_folders_on_a_fake_home(tmp_path):
    home = tmp_path / "home"
    webui = home / "stable-diffusion-webui" / "models" / "Lora"
    comfy = home / "ComfyUI" / "models" / "loras"
    for folder in (webui, comfy, home / "stable-diffusion-webui-forge" / "models"):
        folder.mkdir(parents=True)
    workspace = tmp_path / "workspace"
    (workspace / "stable-diffusion-webui-forge" / "models").mkdir(parents=True)
    (workspace / "stable-diffusion-webui-forge" / "models" / "Lora").symlink_to(webui)  # the same folder again
    forge = tmp_path / "opt" / "stable-diffusion-webui-forge" / "models" / "Lora"
    forge.mkdir(parents=True)
    assert find_lora_folders(home, extra_roots=()) == [webui, comfy]
    assert find_lora_folders(home, extra_roots=(workspace, tmp_path / "opt")) == [webui, comfy, forge]
    assert find_lora_folders(tmp_path / "nobody", extra_roots=()) == []


def test_missing_to_lists_the_folders_found(project, tmp_path, monkeypatch, capsys):
    webui = tmp_path / "home" / "stable-diffusion-webui" / "models" / "Lora"
    webui.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert main(["install", str(project.root)]) == 2
    err = capsys.readouterr().err
    assert "--to LORA_DIR is missing" in err and str(webui) in err


def test_the_help_shows_to_as_required(capsys):
    with pytest.raises(SystemExit):
        main(["install", "--help"])
    out = capsys.readouterr().out
    usage = " ".join(out[:out.index("\n\n")].split())
    assert usage.startswith("usage: loratui install [-h] --to LORA_DIR [--checkpoint FILE]") and usage.endswith(" DIR")
    assert "required: the Lora folder" in " ".join(out.split())


def test_permissions_follow_the_umask(project, lora_dir):
    result = install_lora(project.output_dir / "akari.safetensors", lora_dir, "akari", card=None)
    umask = os.umask(0)
    os.umask(umask)
    assert result.path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_sizes_and_ages_read_like_the_design():
    from loratui.preview.install import ExistingFile, human_age, human_size

    assert human_size(37_000_000) == "37 MB" and human_size(1_500_000_000) == "1.5 GB" and human_size(10) == "1 KB"
    assert human_age(3 * 3600 + 5) == "3 hours old" and human_age(60) == "1 minute old"
    assert ExistingFile(Path("a.safetensors"), 37_000_000, 1000.0).describe(now=1000.0 + 2 * 86400) == \
        "37 MB, 2 days old"
