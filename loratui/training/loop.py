"""The LoRA training loop: one readable loop on accelerate + peft, with events, checkpoints, stop and resume."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratui.config import Config
from loratui.fsutil import DiskFull
from loratui.jobs import events as ev
from loratui.jobs.runner import Job, job
from loratui.progress import CancelToken, no_progress
from loratui.project import Project
from loratui.training.health import TrainingFailed, nan_message, oom_message
from loratui.training.preflight import Preflight, preflight
from loratui.training.stop_signals import STOP_SIGNALS, StopSignal, stop_signals

# Set (to anything) to all-reduce gradients on every micro-batch, as loratui did before `no_sync`: the test that
# shows both give the same losses uses it.
SYNC_EVERY_BATCH_ENV = "LORATUI_SYNC_EVERY_BATCH"


@dataclass
class TrainResult:
    """What a run did: steps, where it stopped, the files it wrote and the last loss."""

    steps: int
    total_steps: int
    epochs: int
    checkpoints: list[Path] = field(default_factory=list)
    final_file: Path | None = None
    final_loss: float | None = None
    seconds: float = 0.0
    stopped: bool = False
    resumed_from: int = 0
    signal: int | None = None  # the signal that asked for the stop (Ctrl-C: SIGINT), if one did
    archived: Path | None = None  # where --from-scratch moved the earlier run's files


def run_training(
    project: Project,
    config: Config,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    cancel: CancelToken | None = None,
    allow_pickle: bool = False,
    checks: Preflight | None = None,
    from_scratch: bool = False,
) -> TrainResult:
    """Train the project's LoRA as a ``train`` job (joining the caller's, if it opened one). Bad input fails with
    one line before torch loads; the run's plan, steps, checkpoints and end go to the job's events.

    ``max_steps`` ends the run early (quick checks) and still writes the final file; ``cancel`` or a stop request
    (`loratui stop DIR`) end it after the current step with a resumable state. ``checks`` is the preflight a
    caller already ran on the same settings (the CLI does, before it opens the job); without it, it runs here.
    An earlier run's files are never overwritten: without ``resume`` the preflight refuses them, and
    ``from_scratch`` first moves them to output/old-<time>/.
    """
    if checks is None:
        checks = preflight(project, config, allow_pickle=allow_pickle, gpus=_process_count(), resume=resume,
                           from_scratch=from_scratch)
    with job(project, "train") as handle:
        archived = _archive_previous(project, config) if from_scratch else None
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        _fresh_accelerate_state()
        # With clip_skip the text encoder's last layers get no gradient; DDP must be told, or it stops the run.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=config.training.train_text_encoder)
        accelerator = Accelerator(mixed_precision=resolve_mixed_precision(config.training.mixed_precision),
                                  cpu=_use_cpu(), kwargs_handlers=[ddp])
        with stop_signals(project) as interrupted:
            run = _Run(project, config, checks, accelerator, handle, cancel, interrupted)
            run.result.archived = archived
            try:
                return run.train(max_steps=max_steps, allow_pickle=allow_pickle)
            except DiskFull as full:
                raise DiskFull(full.path, _after_disk_full(project, config)) from None


def _after_disk_full(project: Project, config: Config) -> str:
    """What to run once space is free: resume from the last state if there is one, else start again."""
    from loratui.training.previous_run import find_previous_run

    run = find_previous_run(project, project.output_name(config))
    if run.resumable:
        return f"`loratui train {project.root} --resume` goes on from the last saved state ({run.steps})"
    if run.exists:
        return (f"`loratui train {project.root} --from-scratch` starts again (no state was saved yet; the files "
                "written so far are kept)")
    return f"run `loratui train {project.root}` again"


def _archive_previous(project: Project, config: Config) -> Path | None:
    """--from-scratch, under the training lock: the earlier run's files move to output/old-<time>/ (rank 0)."""
    import os

    if os.environ.get("RANK", "0") != "0":
        return None
    from loratui.training.previous_run import archive_previous_run

    return archive_previous_run(project, project.output_name(config))


def resolve_mixed_precision(setting: str) -> str:
    """training.mixed_precision for accelerate: "auto" is bf16 where the GPU has it, else fp16; a CPU trains in
    full precision (fp16 autocast is not available there)."""
    import torch

    if not torch.cuda.is_available():
        return "bf16" if setting == "bf16" else "no"
    if setting == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return setting


def _fresh_accelerate_state() -> None:
    """accelerate keeps one state per process and refuses another precision; a wizard trains several times
    in one process, so a single-process run starts from a clean state (a launched run keeps its own)."""
    import os

    from accelerate.state import AcceleratorState, GradientState

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def _process_count() -> int:
    """How many processes train (a rank of `accelerate launch` has WORLD_SIZE), known without importing torch."""
    import os

    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def vram_in_use(device: Any) -> dict[str, float]:
    """``{"vram_gb": reserved, "vram_total_gb": total}`` for a CUDA ``device``; ``{}`` for any other (a CPU run
    reports no VRAM, and the wizard says so)."""
    if getattr(device, "type", str(device)) != "cuda":
        return {}
    import torch

    reserved = torch.cuda.memory_reserved(device)
    total = torch.cuda.get_device_properties(device).total_memory
    return {"vram_gb": round(reserved / 1e9, 2), "vram_total_gb": round(total / 1e9, 2)}


def _use_cpu() -> bool:
    """`accelerate launch` on a machine without CUDA sets ACCELERATE_USE_CPU (see train_cmd.launch_multi_gpu)."""
    import os

    return os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")


class _Run:
    """One run's state; the methods are the loop's stages, in order."""

    def __init__(self, project: Project, config: Config, checks: Preflight, accelerator: Any, job: Job,
                 cancel: CancelToken | None, interrupted: StopSignal):
        self.project, self.config, self.checks = project, config, checks
        self.t = config.training
        self.accelerator = accelerator
        self.job = job
        self.cancel = cancel
        self.interrupted = interrupted
        self.dataset = checks.dataset
        self.output_name = project.output_name(config)
        self.result = TrainResult(0, 0, config.training.epochs)
        self.board: Any = None  # TensorBoard log (training.tensorboard), main process only

    # --- setup ----------------------------------------------------------------------------------------------

    def train(self, *, max_steps: int | None, allow_pickle: bool) -> TrainResult:
        import torch
        from accelerate.utils import set_seed

        from loratui.training.run_position import state_folder

        plan = self.checks.plan
        self.steps_per_epoch = plan.steps.steps_per_epoch
        self.batches_per_process = plan.steps.batches_per_process
        total = plan.total_steps
        position = self.checks.position  # checked against the settings by the preflight
        state_dir = state_folder(self.project.state_dir)
        if position is not None:
            total = position.total_steps
        elif max_steps is not None:
            total = min(total, max_steps)
        self.total_steps = total
        set_seed(self.t.seed)
        try:
            self._prepare_and_loop(position, state_dir, total, allow_pickle)
        except torch.cuda.OutOfMemoryError:
            steps = self.result.steps
            stage = f"at step {steps + 1}" if steps else "loading the model or in the first step"
            raise TrainingFailed(oom_message(stage)) from None
        return self.result

    def _prepare_and_loop(self, position: Any, state_dir: Path, total: int, allow_pickle: bool) -> None:
        from loratui.training import train_state

        acc = self.accelerator
        self._load_model(allow_pickle)
        self._build_optimizer()
        self.facts = self._train_facts()
        for warning in self.checks.warnings:
            self.job.warning(warning)
        self.job.emit(ev.Plan(total_steps=total, steps_per_epoch=self.steps_per_epoch, epochs=self.t.epochs,
                              resumed_from=position.step if position else 0, family=self.family,
                              mixed_precision=acc.mixed_precision, processes=acc.num_processes,
                              modules=self.network.total_modules, device=str(acc.device),
                              config=dataclasses.asdict(self.config)))
        # Latents are sampled from the seeded RNG; the saved RNG goes back after, so a resumed run draws the
        # same noise as an uninterrupted one.
        self._cache_latents()
        if position is not None:
            train_state.load_state(state_dir, self.network, self.optimizer, self.scheduler)
        self.result.total_steps = total
        self.result.resumed_from = position.step if position else 0
        if self.t.tensorboard and acc.is_main_process:
            from loratui.training.tensorboard_log import TrainingBoard

            self.board = TrainingBoard(self.project.logs_dir, self.output_name, self.steps_per_epoch,
                                       self._train_te())
        try:
            self._loop(position)
        finally:
            if self.board is not None:
                self.board.close()

    def _train_te(self) -> bool:
        return self.t.train_text_encoder and self.t.text_encoder_lr > 0

    def _load_model(self, allow_pickle: bool) -> None:
        import torch
        from diffusers.training_utils import cast_training_params

        from loratui.lora.file import add_lora_adapters
        from loratui.training.models import load_base_model

        acc = self.accelerator
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(acc.mixed_precision, torch.float32)
        model = load_base_model(self.config, self.project.root, device="cpu", allow_pickle=allow_pickle)
        self.model = model
        self.family = model.family
        self.sdxl = model.info.is_sdxl
        # Frozen weights in the compute dtype; the VAE stays fp32 when asked (SDXL's VAE overflows in fp16).
        vae_dtype = torch.float32 if self.t.no_half_vae else self.weight_dtype
        model.vae.to(acc.device, vae_dtype)
        for part in (model.unet, *model.text_encoders):
            part.to(acc.device, self.weight_dtype)
        self.network = add_lora_adapters(model.pipeline, self.t.network_dim, self.t.network_alpha,
                                         text_encoders=self._train_te())
        trained = [model.unet, *(model.text_encoders if self._train_te() else [])]
        cast_training_params(trained, dtype=torch.float32)
        if self.t.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
            for encoder in model.text_encoders if self._train_te() else []:
                if hasattr(encoder, "activation_checkpointing_enable"):  # the old name warns in transformers 5.2x
                    encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
                else:
                    encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.unet.train()
        for encoder in model.text_encoders:
            encoder.train(self._train_te())

    def _build_optimizer(self) -> None:
        from loratui.lora.keys import UNET
        from loratui.training.optim import build_optimizer, build_scheduler

        groups = [{"params": self.network.parameters(UNET), "lr": self.t.unet_lr}]
        for component in self.network.models:
            if component != UNET:
                groups.append({"params": self.network.parameters(component), "lr": self.t.text_encoder_lr})
        self.optimizer = build_optimizer(self.t.optimizer, groups)
        self.scheduler = build_scheduler(self.t, self.optimizer, self.total_steps)
        model = self.model
        encoders = model.text_encoders if self._train_te() else []
        prepared = self.accelerator.prepare(model.unet, *encoders, self.optimizer)
        self.unet, self.optimizer = prepared[0], prepared[-1]
        self.synced_models = list(prepared[:-1])  # DDP-wrapped in a multi-GPU run
        self.encoders = list(model.text_encoders)
        for i, encoder in enumerate(prepared[1:-1]):
            self.encoders[i] = encoder

    def _train_facts(self) -> Any:
        from loratui.lora.metadata import TrainFacts, dataset_dir_facts, sd_model_name

        folders = [self.project.concept_dir(c) for c in self.config.concepts]
        dirs, frequency = dataset_dir_facts(folders)
        buckets = {str(i): {"resolution": list(b), "count": n} for i, (b, n) in enumerate(self.dataset.buckets.items())}
        return TrainFacts(
            family=self.family, config=self.config, output_name=self.output_name,
            base_model_name=sd_model_name(self.config.project.base_model), dataset_dirs=dirs,
            num_batches_per_epoch=self.checks.plan.steps.batches_per_epoch, max_train_steps=self.total_steps,
            tag_frequency=frequency,
            bucket_info={"buckets": buckets, "mean_img_ar_error": self._mean_ar_error()},
            mixed_precision=self.accelerator.mixed_precision,
            keep_tokens=self.dataset.pictures[0].keep_tokens, num_processes=self.accelerator.num_processes,
            optimizer=self.t.optimizer,
        )

    def _mean_ar_error(self) -> float:
        errors = [abs(p.placement.ar_error) for p in self.dataset.pictures]
        return sum(errors) / len(errors)

    def _cache_latents(self) -> None:
        import torch

        from loratui.training.data import LatentCache, vae_identity

        self.cache = None
        if self.t.cache_latents == "off":
            return
        vae = self.model.vae
        self.cache = LatentCache(self.dataset, self.t.cache_latents, self.project.state_dir / "latents",
                                 vae_identity(vae))

        def encode(pixels: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.sample()

        from loratui.progress import Progress

        progress = self.job.progress(no_progress)

        def report(done: int, total: int, item: str) -> None:
            progress(Progress("caching latents", done, total, item))

        self.cache.fill(encode, report)

    # --- the loop -------------------------------------------------------------------------------------------

    def _loop(self, position: Any) -> None:
        acc = self.accelerator
        step = position.step if position else 0
        start_epoch = position.epoch if position else 0
        skip = position.batches_done if position else 0
        accumulation = self.t.gradient_accumulation_steps
        started = time.monotonic()
        step_times: list[float] = []
        last = time.monotonic()
        self.result.steps = step
        for epoch in range(start_epoch, self.t.epochs):
            batches = self.dataset.process_batches(epoch, acc.process_index, acc.num_processes)
            group_loss, group_size = 0.0, 0
            for index in range(skip, len(batches)):
                # Each process's batch gets its own flips and caption shuffles: number it as in the whole epoch.
                samples = self.dataset.samples(batches[index], epoch, index * acc.num_processes + acc.process_index)
                # The last group of an epoch may be short: the mean over its real batches keeps the loss scale.
                group_end = min(len(batches), (index // accumulation + 1) * accumulation)
                in_group = group_end - (index // accumulation) * accumulation
                with self._no_sync(index + 1 < group_end):
                    loss = self._forward(samples)
                    acc.backward(loss / in_group)
                group_loss += loss.detach().float()
                group_size += 1
                if index + 1 < group_end:
                    continue
                mean_loss = float(acc.gather(group_loss.reshape(1) / group_size).mean())
                if not math.isfinite(mean_loss):
                    raise TrainingFailed(nan_message(step + 1))
                self._optimizer_step()
                step += 1
                group_loss, group_size = 0.0, 0
                now = time.monotonic()
                step_times.append(now - last)
                last = now
                self._report(step, epoch, mean_loss, step_times, started)
                done_in_epoch = index + 1
                if step >= self.total_steps:
                    self._finish(step, epoch + 1, started, step_times, early=done_in_epoch < len(batches)
                                 or epoch + 1 < self.t.epochs)
                    return
                if self._stop_requested():
                    self._stop(step, epoch, done_in_epoch, started, step_times)
                    return
            skip = 0
            self._end_of_epoch(step, epoch + 1)
        self._finish(step, self.t.epochs, started, step_times, early=False)

    def _no_sync(self, skip: bool) -> Any:
        """Gradient all-reduce only on a group's last micro-batch: the others accumulate locally (DDP's
        ``no_sync`` through accelerate). :data:`SYNC_EVERY_BATCH_ENV` turns this off, to compare against."""
        import contextlib
        import os

        stack = contextlib.ExitStack()
        if skip and self.accelerator.num_processes > 1 and not os.environ.get(SYNC_EVERY_BATCH_ENV):
            for model in self.synced_models:
                stack.enter_context(self.accelerator.no_sync(model))
        return stack

    def _forward(self, samples: list[Any]) -> Any:
        import torch
        import torch.nn.functional as F  # noqa: N812 (torch's own convention)
        from diffusers.training_utils import compute_snr

        from loratui.training.data import pixel_batch

        acc, model = self.accelerator, self.model
        scheduler = model.noise_scheduler
        with torch.no_grad():
            if self.cache is not None:
                latents = self.cache.batch(samples).to(acc.device, torch.float32)
            else:
                pixels = pixel_batch(self.dataset, samples).to(acc.device, model.vae.dtype)
                latents = model.vae.encode(pixels).latent_dist.sample().float()
            latents = latents * model.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        if self.t.noise_offset:
            # Offset noise (Guttenberg 2023): a per-channel shift teaches very dark and very bright pictures.
            noise = noise + self.t.noise_offset * torch.randn(latents.shape[0], latents.shape[1], 1, 1,
                                                              device=latents.device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                                  device=latents.device).long()
        noisy = scheduler.add_noise(latents, noise, timesteps)
        target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(
            latents, noise, timesteps)
        with acc.autocast():
            hidden, added = self._encode_prompts(samples)
            prediction = self.unet(noisy.to(self.weight_dtype), timesteps, hidden.to(self.weight_dtype),
                                   added_cond_kwargs=added).sample
        loss = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=[1, 2, 3])
        if self.t.min_snr_gamma:
            # Min-SNR weighting (Hang et al. 2023) as kohya applies it; v-prediction divides by snr + 1.
            snr = compute_snr(scheduler, timesteps)
            clipped = torch.clamp(snr, max=self.t.min_snr_gamma)
            weight = clipped / (snr + 1) if scheduler.config.prediction_type == "v_prediction" else clipped / snr
            loss = loss * weight
        return loss.mean()

    def _encode_prompts(self, samples: list[Any]) -> tuple[Any, dict[str, Any] | None]:
        import torch

        captions = [s.caption for s in samples]
        grad = torch.enable_grad() if self._train_te() else torch.no_grad()
        with grad:
            if not self.sdxl:
                return self._encode_sd(captions), None
            return self._encode_sdxl(captions, samples)

    def _tokens(self, tokenizer: Any, captions: list[str]) -> Any:
        return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids.to(self.accelerator.device)

    def _encode_sd(self, captions: list[str]) -> Any:
        """SD1/2: the output of layer -clip_skip, through the final layer norm (kohya's clip_skip)."""
        encoder = self.encoders[0]
        ids = self._tokens(self.model.tokenizers[0], captions)
        if self.t.clip_skip <= 1:
            return encoder(ids).last_hidden_state
        output = encoder(ids, output_hidden_states=True)
        base = self.accelerator.unwrap_model(encoder)
        norm = getattr(base, "text_model", base).final_layer_norm
        return norm(output.hidden_states[-self.t.clip_skip])

    def _encode_sdxl(self, captions: list[str], samples: list[Any]) -> tuple[Any, dict[str, Any]]:
        """SDXL: both encoders' penultimate hidden states side by side, the pooled output of the second, and
        the time ids (original size, crop top-left, target size) of each picture."""
        import torch

        states = []
        pooled = None
        for tokenizer, encoder in zip(self.model.tokenizers, self.encoders, strict=True):
            output = encoder(self._tokens(tokenizer, captions), output_hidden_states=True)
            states.append(output.hidden_states[-2])
            pooled = output[0]  # CLIPTextModelWithProjection: text_embeds
        ids = []
        for sample in samples:
            picture = self.dataset.pictures[sample.index]
            left, top = picture.placement.crop[:2]
            bucket = picture.placement.bucket
            ids.append([picture.size[1], picture.size[0], top, left, bucket[1], bucket[0]])
        time_ids = torch.tensor(ids, device=self.accelerator.device, dtype=self.weight_dtype)
        return torch.cat(states, dim=-1), {"text_embeds": pooled.to(self.weight_dtype), "time_ids": time_ids}

    def _optimizer_step(self) -> None:
        acc = self.accelerator
        if self.t.max_grad_norm > 0:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            acc.clip_grad_norm_(params, self.t.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _report(self, step: int, epoch: int, loss: float, step_times: list[float], started: float) -> None:
        from loratui.training.eta import eta_from_step_times

        recent = step_times[-20:]
        seconds = sum(recent) / len(recent)
        images = self.t.batch_size * self.t.gradient_accumulation_steps * self.accelerator.num_processes
        remaining = self.total_steps - step
        rates = self.scheduler.get_last_lr()
        self.job.emit(ev.Step(step=step, total_steps=self.total_steps, epoch=epoch + 1, epochs=self.t.epochs,
                              loss=loss, lr=rates[0], lr_text_encoder=rates[1] if len(rates) > 1 else None,
                              images_per_s=images / seconds if seconds > 0 else 0.0,
                              eta_s=eta_from_step_times(step_times, remaining),
                              elapsed_s=time.monotonic() - started, **self._vram()))
        if self.board is not None:
            self.board.step(step, loss, rates)
        self.result.steps = step
        self.result.final_loss = loss

    def _vram(self) -> dict[str, float]:
        """The GPU memory this process holds and the card's total (GB), for the step events; nothing on a CPU.
        Reserved, not allocated: the caching allocator's pool is what the card has lent out (nvidia-smi's figure),
        and what runs out first."""
        return vram_in_use(self.accelerator.device)

    def _stop_requested(self) -> bool:
        """The stop file, Ctrl-C or the cancel token; in a multi-GPU run the main process decides."""
        import torch

        wanted = (self.interrupted.is_set() or self.job.stop_requested
                  or (self.cancel is not None and self.cancel.cancelled))
        if self.accelerator.num_processes > 1:
            flag = torch.tensor([1 if wanted else 0], device=self.accelerator.device)
            wanted = bool(self.accelerator.reduce(flag, reduction="sum").item())
        return wanted

    # --- files ----------------------------------------------------------------------------------------------

    def _save_lora(self, path: Path, epoch: int, step: int) -> None:
        from loratui.lora.file import save_lora

        if self.accelerator.is_main_process:
            save_lora(path, self.network, self.facts, epoch=epoch, step=step)
            self.job.emit(ev.Checkpoint(path=str(path), epoch=epoch, step=step))
            self.result.checkpoints.append(path)
        self.accelerator.wait_for_everyone()

    def _save_state(self, step: int, epoch: int, batches_done: int) -> None:
        from loratui.training import train_state
        from loratui.training.run_position import RunPosition, state_folder

        if self.accelerator.is_main_process:
            position = RunPosition(step, epoch, batches_done, self.total_steps, self.checks.settings)
            train_state.save_state(state_folder(self.project.state_dir), position, self.network,
                                   self.optimizer, self.scheduler)
        self.accelerator.wait_for_everyone()

    def _end_of_epoch(self, step: int, epoch: int) -> None:
        from loratui.lora.paths import checkpoint_path, is_checkpoint_epoch

        if self.board is not None:
            self.board.epoch(epoch)
        if is_checkpoint_epoch(epoch, self.t.save_every_n_epochs, self.t.epochs):
            self._save_lora(checkpoint_path(self.project.output_dir, self.output_name, epoch), epoch, step)
            if self.t.save_state:
                self._save_state(step, epoch, 0)

    def _stop(self, step: int, epoch: int, batches_done: int, started: float, step_times: list[float]) -> None:
        """Stopped by request: a resumable state and a step-named LoRA file (kohya's NAME-step00000123)."""
        if batches_done >= len(self.dataset.process_batches(epoch, 0, self.accelerator.num_processes)):
            epoch, batches_done = epoch + 1, 0
            self._end_of_epoch(step, epoch)
        self._save_state(step, epoch, batches_done)
        path = self.project.output_dir / f"{self.output_name}-step{step:08d}.safetensors"
        self._save_lora(path, epoch, step)
        self.result.signal = self.interrupted.signum
        self.result.stopped = True
        self.result.seconds = time.monotonic() - started
        self._record_speed(step_times)
        # Why it stopped goes in the end itself: a stop the user asked for is not a warning.
        self.job.done(stopped=True, result=path, seconds=self.result.seconds, steps=step,
                      total_steps=self.total_steps, stopped_by=self._stopped_by())

    def _stopped_by(self) -> str:
        import signal as signals

        if self.interrupted.signum is not None:
            return STOP_SIGNALS.get(signals.Signals(self.interrupted.signum).name, "a signal")
        if self.cancel is not None and self.cancel.cancelled:
            return "cancelled"
        return "a stop request"

    def _finish(self, step: int, epoch: int, started: float, step_times: list[float], early: bool) -> None:
        from loratui.lora.paths import checkpoint_path

        if self.board is not None:
            self.board.epoch(epoch)
        path = checkpoint_path(self.project.output_dir, self.output_name)
        self._save_lora(path, epoch, step)
        self.result.final_file = path
        if self.accelerator.is_main_process:
            from loratui.training.previous_run import mark_finished

            mark_finished(self.project.state_dir)  # `--resume` now says it is done instead of retraining
        self.result.seconds = time.monotonic() - started
        self._record_speed(step_times)
        self.job.done(result=path, seconds=self.result.seconds, steps=step, total_steps=self.total_steps,
                      early=early)

    def _record_speed(self, step_times: list[float]) -> None:
        from loratui.training.speed_history import detect_gpu_name, record_speed, typical_step_seconds

        # The median step without the first (one-off costs): a stretch slowed by other work does not count.
        seconds = typical_step_seconds(step_times)
        if seconds is None or not self.accelerator.is_main_process:
            return
        try:
            record_speed(detect_gpu_name(), self.family, self.config.dataset.resolution, self.t.batch_size,
                         seconds, gradient_accumulation_steps=self.t.gradient_accumulation_steps)
        except (OSError, ValueError) as exc:  # the speed history is a nicety; never fail a finished run on it
            self.job.warning(f"could not record the measured speed: {exc}")
