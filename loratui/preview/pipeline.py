"""The preview renderer: the project's base model loaded once, its checkpoints made ready once each, quiet.

One pipeline serves the whole grid; a cell only switches the active checkpoint and its weight
(``set_adapters``), so nothing is reloaded between cells. Weight 0 renders with every LoRA off, which is the
base model's own picture, bit for bit.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loratui.config import Config
from loratui.errors import LoratuiError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from loratui.lora.read import LoraInfo

# config.SAMPLERS -> the diffusers scheduler class that matches A1111's sampler of that name.
SCHEDULERS = {
    "euler_a": "EulerAncestralDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "ddim": "DDIMScheduler",
}
SLOT = "grid"  # the adapter the checkpoints of one run take turns in
# LoRA families that load into each other's models (SD2 512 and 768-v share one architecture).
_FAMILY_GROUPS = {"sd15": "SD1.x", "sd2": "SD2.x", "sd2-v": "SD2.x", "sdxl": "SDXL"}
OOM_ADVICE = "try fewer --steps or a smaller --size, or wait for training to end (it shares the GPU)"


class OutOfMemory(LoratuiError):
    """Rendering ran out of (GPU) memory: the message names what to change."""

    def __init__(self, what: str, device: str):
        where = "the GPU" if device.startswith("cuda") else "the computer"
        super().__init__(f"{where} ran out of memory {what}: {OOM_ADVICE}")


@dataclass
class PreviewPipeline:
    """A loaded base model ready to render cells; checkpoints are made ready with :meth:`load_lora`.

    Checkpoints of one training run share their structure (modules, rank, alpha), so they take turns in one
    adapter, the *slot*: peft adds its layers once, and each checkpoint only copies its weights in (tens of
    milliseconds, where adding an adapter walks every module of the model: about a second for SD1.5, several for
    SDXL). A file that does not fit the slot (another run's rank, LyCORIS layers) is loaded by diffusers as an
    adapter of its own. Either way the picture is the same, bit for bit.
    """

    pipe: Any
    device: str
    dtype: torch.dtype
    family: str  # sd15, sd2, sd2-v or sdxl
    adapters: dict[str, str] = field(default_factory=dict)  # checkpoint path -> adapter name (SLOT or its own)
    _slot: Any = None  # the slot's LoraNetwork
    _slot_shape: tuple[int, float, bool] | None = None  # rank, alpha, text encoder: what the slot can hold
    _slot_holds: str | None = None  # the checkpoint whose weights are in the slot now
    # Whether disable_lora() is in force (a weight-0 cell), so a cell only walks every module when it changes;
    # None after a load, which may leave either state.
    _lora_off: bool | None = False

    def load_lora(self, path: Path) -> str:
        """Make a checkpoint ready to render (once per path); a file that cannot be used raises LoratuiError."""
        key = str(path)
        if key in self.adapters:
            return self.adapters[key]
        info = self._check_file(Path(path))
        if self._into_slot(Path(path), info):
            self.adapters[key] = SLOT
            return SLOT
        name = f"ckpt{len(self.adapters)}"
        try:
            with quiet_loading():
                self.pipe.load_lora_weights(str(path), adapter_name=name)
        except Exception as exc:  # noqa: BLE001 (diffusers and safetensors raise many kinds for a bad file)
            if is_out_of_memory(exc):
                raise OutOfMemory(f"loading {Path(path).name}", self.device) from None
            self._forget(name)
            reason = ("its tensor shapes do not match: was it trained on another model?"
                      if "size mismatch" in str(exc) else _first_line(exc))
            raise LoratuiError(f"{Path(path).name}: cannot be loaded as a LoRA for this base model ({reason})") \
                from None
        self.adapters[key] = name
        self._lora_off = None
        return name

    def _check_file(self, path: Path) -> LoraInfo:
        """Header checks with plain messages before diffusers sees the file: not a LoRA, another model family."""
        from loratui.lora.read import read_lora

        info = read_lora(path)  # LoratuiError naming the file: not safetensors, damaged, not a LoRA
        made_for = _FAMILY_GROUPS.get(info.family or "")
        ours = _FAMILY_GROUPS.get(self.family)
        if made_for and ours and made_for != ours:
            raise LoratuiError(f"{path.name}: made for {made_for}, but the base model is {ours}: render it on the "
                               "model it was trained on")
        return info

    def _into_slot(self, path: Path, info: LoraInfo) -> bool:
        """Copy the checkpoint into the slot (made for the first checkpoint's shape); False if it does not fit."""
        shape = (info.rank, info.alpha, any(m.startswith("lora_te") for m in info.modules))
        if self._slot_shape is None:
            self._make_slot(shape)
        if shape != self._slot_shape or self._slot is None:
            return False
        try:
            self._fill_slot(path)
        except LoratuiError:
            return False  # extra or missing modules, per-module ranks or alphas: diffusers takes it
        return True

    def _make_slot(self, shape: tuple[int, float, bool]) -> None:
        from loratui.lora.file import add_lora_adapters

        self._slot_shape = shape
        rank, alpha, text_encoders = shape
        try:
            with quiet_loading():
                self._slot = add_lora_adapters(self.pipe, rank, alpha, text_encoders=text_encoders,
                                               adapter_name=SLOT)
        except Exception as exc:  # noqa: BLE001 (a model peft cannot wrap: every file goes to diffusers)
            if is_out_of_memory(exc):
                raise OutOfMemory("adding the LoRA layers", self.device) from None
            self._slot = None
            return
        # Rendering only: the slot's weights in the model's precision, no gradients (training keeps them float32).
        for model in self._slot.models.values():
            for part in model.modules():
                if SLOT in getattr(part, "lora_A", {}):
                    for layer in (part.lora_A[SLOT], part.lora_B[SLOT]):
                        layer.to(self.dtype).requires_grad_(False)
        self._lora_off = None

    def _fill_slot(self, path: Path) -> None:
        from loratui.lora.file import load_kohya_weights

        if self._slot_holds == str(path):
            return
        self._slot_holds = None  # a copy that fails halfway leaves the slot holding nothing usable
        load_kohya_weights(self._slot, path)
        self._slot_holds = str(path)

    def render(self, prompt: str, negative_prompt: str, *, seed: int, steps: int, cfg_scale: float, width: int,
               height: int, clip_skip: int, checkpoint: Path | None, weight: float) -> Image.Image:
        """One cell: ``checkpoint`` at ``weight`` (None or weight 0: no LoRA at all), the same noise for every cell."""
        import torch

        if checkpoint is None or weight == 0:
            if self.adapters and self._lora_off is not True:
                self.pipe.disable_lora()
                self._lora_off = True
        else:
            adapter = self.load_lora(checkpoint)
            if adapter == SLOT:
                self._fill_slot(checkpoint)
            if self._lora_off is not False:
                self.pipe.enable_lora()
                self._lora_off = False
            self.pipe.set_adapters([adapter], adapter_weights=[weight])
        # The noise comes from a CPU generator: the same seed gives the same picture on any device, so cells
        # cached on one machine (or on the CPU while training held the GPU) match new ones in the same grid.
        generator = torch.Generator("cpu").manual_seed(seed)
        try:
            with torch.inference_mode():
                if not self.sdxl and clip_skip > 1:
                    # The prompt as training read it (layer -clip_skip through the final norm). diffusers' own
                    # clip_skip reaches for `text_model`, which newer transformers no longer have.
                    prompts = {"prompt_embeds": self._encode(prompt, clip_skip),
                               "negative_prompt_embeds": self._encode(negative_prompt, clip_skip)}
                else:
                    prompts = {"prompt": prompt, "negative_prompt": negative_prompt or None}
                result = self.pipe(**prompts, num_inference_steps=steps, guidance_scale=cfg_scale, width=width,
                                   height=height, generator=generator, output_type="pil")
        except Exception as exc:
            if is_out_of_memory(exc):
                raise OutOfMemory(f"rendering a {width}x{height} cell", self.device) from None
            raise
        return result.images[0]

    @property
    def sdxl(self) -> bool:
        return self.family == "sdxl"

    def _encode(self, text: str, clip_skip: int) -> torch.Tensor:
        """SD1/2 prompt embeddings with A1111's / kohya's clip skip (2 = the penultimate layer)."""
        tokenizer, encoder = self.pipe.tokenizer, self.pipe.text_encoder
        ids = tokenizer([text], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(encoder.device)
        output = encoder(ids, output_hidden_states=True)
        norm = getattr(encoder, "text_model", encoder).final_layer_norm
        return norm(output.hidden_states[-clip_skip]).to(self.dtype)

    def close(self) -> None:
        """Drop the model and give its GPU memory back (a wizard renders several grids in one process)."""
        self.pipe = self._slot = None
        self.adapters.clear()
        with contextlib.suppress(Exception):
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _forget(self, name: str) -> None:
        """Remove what a failed load may have left, so the other adapters keep working."""
        with contextlib.suppress(Exception), quiet_loading():
            self.pipe.delete_adapters(name)


def preview_device(config: Config) -> tuple[str, torch.dtype]:
    """cuda in the training precision (auto: bf16 where the GPU has it, else fp16); otherwise the CPU in float32."""
    import torch

    from loratui.training.loop import resolve_mixed_precision

    if not torch.cuda.is_available():
        return "cpu", torch.float32
    precision = resolve_mixed_precision(config.training.mixed_precision)
    return "cuda", {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)


def load_preview_pipeline(config: Config, project_root: Path, sampler: str, *, device: str | None = None,
                          dtype: torch.dtype | None = None) -> PreviewPipeline:
    """The project's base model (diffusers folder, single file or hub id) with ``sampler``, progress bars off."""
    from loratui.hf_logging import quiet_hf_libraries
    from loratui.training.models import load_base_model

    quiet_hf_libraries()
    if device is None or dtype is None:
        chosen_device, chosen_dtype = preview_device(config)
        device, dtype = device or chosen_device, dtype or chosen_dtype
    try:
        with quiet_loading():
            model = load_base_model(config, project_root, device=device, dtype=dtype)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise OutOfMemory("loading the base model", device) from None
        raise
    pipe = model.pipeline
    pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return PreviewPipeline(pipe, str(device), dtype, model.info.name)


def make_scheduler(sampler: str, scheduler_config: Any) -> Any:
    """The sampler's scheduler built from the model's own schedule (prediction type, betas)."""
    import diffusers

    try:
        scheduler_class = getattr(diffusers, SCHEDULERS[sampler])
    except KeyError:
        raise LoratuiError(f"preview.sampler {sampler!r}: use one of {', '.join(SCHEDULERS)}") from None
    return scheduler_class.from_config(scheduler_config)


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text.lower() or "can't allocate memory" in text.lower() or isinstance(exc, MemoryError))


class _DropLoadNoise(logging.Filter):
    """transformers logs a "LOAD REPORT" table for every adapter after the first (the other adapters' keys,
    listed as missing), and diffusers logs a rejected file's whole error before raising it; loratui reports a
    failed load in one line itself, so both are dropped, even when a user's verbosity lets warnings through."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "LOAD REPORT" not in message and "was unsuccessful with the following error" not in message


_LOAD_NOISE_FILTER = _DropLoadNoise()
# Where that noise is logged from (a logger's filter only sees records logged to that very logger).
_NOISY_LOGGERS = ("transformers.integrations.peft", "transformers.modeling_utils", "transformers.modeling_layers",
                  "transformers.utils.loading_report", "diffusers.loaders.peft", "diffusers.loaders.lora_base",
                  "diffusers.loaders.lora_pipeline")


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No LOAD REPORT tables, load-error dumps or peft adapter warnings while models and adapters load."""
    targets: list[Any] = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    for library in ("transformers", "diffusers"):  # and whatever else reaches the libraries' own handlers
        targets += logging.getLogger(library).handlers
    for target in targets:
        target.addFilter(_LOAD_NOISE_FILTER)
    try:
        with warnings.catch_warnings():
            # Loading several adapters into one model is the point of the grid, not a mistake; and a rejected
            # file's cleanup (peft resetting the active adapter) is reported as that file's error.
            warnings.filterwarnings("ignore", message=r"Already found a `peft_config`", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"Adapter .* was active which is now deleted",
                                    category=UserWarning)
            yield
    finally:
        for target in targets:
            target.removeFilter(_LOAD_NOISE_FILTER)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
