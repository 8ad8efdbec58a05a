"""The one training loop of the zoo: time-boxed, resumable, logged to TensorBoard.

A run folder holds ``checkpoint.safetensors`` + ``checkpoint.json`` (resumed automatically),
``samples/epoch_NNNN.png`` (fixed-noise grids), ``samples/final.png``, optionally
``samples/quality_sorted.png`` (samples ordered by TIGAS score) and ``tb/`` (TensorBoard).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from tigas_core.generators import MODELS, build_model
from tigas_core.generators.base import ZooModel
from tigas_core.generators.common import ImageFolderTensors, load_checkpoint, save_checkpoint, save_grid
from tigas_core.precision import resolve_precision
from tigas_core.rng import rng_state, set_rng_state

log = logging.getLogger("tigas.zoo")


@dataclasses.dataclass
class ZooTrainOptions:
    model: str
    data: Path
    out: Path
    minutes: float = 20.0
    max_steps: int | None = None
    batch_size: int | None = None  # None: the run's own when resuming, else the model's (`ZooModel.batch_size`)
    seed: int = 0
    img_size: int = 32
    data_limit: int | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    tigas_weight: float = 0.0
    tigas_weights: str | None = None  # as `TIGAS(weights=...)`: None for the bundled ones
    tigas_every: int = 1
    tigas_warmup: int = 0
    tigas_warmup_mode: str = "linear"
    tigas_multi_scale: bool = False
    quality_grid: bool = False
    checkpoint_every_s: float = 120.0
    grid_size: int = 64
    log_every: int = 10
    fresh: bool = False
    device: str = "auto"
    precision: str = "auto"  # bf16 where it is native, else fp32 (see `resolve_precision`); or "fp32", "bf16"


def training_precision(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a training step runs in (``precision`` resolved). ``bf16``: autocast runs
    convolutions and matrix products in bfloat16 while weights, optimiser moments and losses stay
    float32; bfloat16 has float32's exponent range, so no loss scaling is needed. On one core of
    an AMX CPU every zoo model made 1.37-1.47x the steps per second of float32, on an AMD EPYC with
    AVX512-BF16 1.45-1.69x (benchmarks/zoo_precision.py)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _build_tigas(options: ZooTrainOptions):
    """TIGASLoss (+ warm-up scheduler) when the run uses TIGAS, else (None, None)."""
    if options.tigas_weight <= 0 and not options.quality_grid:
        return None, None
    from tigas_core.api import TIGAS
    from tigas_core.generator_loss import TIGASLoss, TIGASScheduler

    scorer = TIGAS(options.tigas_weights, device=options.device)
    log.info("TIGAS weights: %s", scorer.weights_source)
    loss = TIGASLoss(scorer, weight=options.tigas_weight, every_n_steps=options.tigas_every, multi_scale=options.tigas_multi_scale)
    scheduler = (TIGASScheduler(loss, options.tigas_weight, options.tigas_warmup, options.tigas_warmup_mode)
                 if options.tigas_warmup > 0 else None)
    return loss, scheduler


def _restore(model: ZooModel, ckpt: Path) -> dict[str, Any]:
    """Load a run's state into ``model``; returns the checkpoint's meta (progress, batch size, ...)."""
    tensors, meta = load_checkpoint(ckpt)
    if meta.get("model") != model.name:
        raise ValueError(f"{ckpt}: holds a {meta.get('model')!r} run, not {model.name!r}; use another --out or --fresh")
    saved = model.saved_config(meta)
    if saved != model.config:
        raise ValueError(f"{ckpt}: config differs from this run's ({saved} vs {model.config}); use another --out or --fresh")
    model.load_state_tensors(tensors, meta)
    set_rng_state({key.removeprefix("rng."): value for key, value in tensors.items() if key.startswith("rng.")})
    return meta


# What every run trained with before checkpoints recorded it: the batch size and the precision.
LEGACY_BATCH_SIZE = 64
LEGACY_PRECISION = "fp32"


def run_batch_size(model: ZooModel, requested: int | None, meta: dict[str, Any] | None, ckpt: Path) -> int:
    """The batch size of this invocation: a resumed run keeps its own (its position in an epoch is
    counted in its batches), a fresh one takes ``requested`` or the model's default."""
    if meta is None:
        return model.batch_size if requested is None else requested
    recorded = int(meta.get("batch_size", LEGACY_BATCH_SIZE))
    if requested is not None and requested != recorded:
        raise ValueError(f"{ckpt}: this run trains with batch size {recorded}, not {requested}; "
                         "leave --batch-size out to resume it, or use another --out or --fresh")
    return recorded


def _fitting_threads():
    """Caps the threads of scikit-learn's fits (clusters, mixture priors) at torch's, so that
    ``--threads 1`` holds for them too: unbounded, their OpenMP/BLAS pools fight a second run
    on the same cores (a 10k-code mixture fit took 16 s instead of 8 s on one core beside one)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(torch.get_num_threads())


def _save(model: ZooModel, ckpt: Path, progress: dict[str, Any], options: ZooTrainOptions, data: ImageFolderTensors) -> None:
    with _fitting_threads():
        model.prepare_sampling(data.images, options.seed)
    tensors, meta = model.state_tensors()
    tensors.update({f"rng.{key}": value for key, value in rng_state().items()})
    meta.update(model=model.name, config=model.config, progress=progress, class_names=data.class_names,
                data=str(options.data), tigas_weight=options.tigas_weight, seed=options.seed,
                precision=options.precision, batch_size=options.batch_size)
    save_checkpoint(ckpt, tensors, meta)


def open_run(options: ZooTrainOptions) -> tuple[ZooModel, ImageFolderTensors, ZooTrainOptions, dict[str, Any]]:
    """The model on its device (resumed from ``out/checkpoint`` unless ``fresh``), its images, the
    options with the precision and batch size resolved, and the progress so far."""
    from tigas_core.api import resolve_device

    ckpt = Path(options.out) / "checkpoint"
    data = ImageFolderTensors(options.data, options.img_size, options.data_limit)
    if data.skipped:
        log.warning("%d unreadable images skipped, e.g. %s", len(data.skipped), data.skipped[0])
    config = {**options.overrides, "img_size": options.img_size}
    if options.model in MODELS and MODELS[options.model].takes_labels(config):
        config["n_classes"] = len(data.class_names)
    if options.model in MODELS and "class_names" in MODELS[options.model].defaults:  # a prompt vocabulary names them
        config["class_names"] = list(data.class_names)
    torch.manual_seed(options.seed)
    device = resolve_device(options.device)
    options = dataclasses.replace(options, device=str(device), precision=resolve_precision(device, options.precision))
    model = build_model(options.model, config).to(device)
    progress = {"step": 0, "epoch": 0, "step_in_epoch": 0, "seconds": 0.0}
    meta = _restore(model, ckpt) if ckpt.with_suffix(".json").exists() and not options.fresh else None
    options = dataclasses.replace(options, batch_size=run_batch_size(model, options.batch_size, meta, ckpt))
    if meta is not None:
        progress = meta["progress"]
        log.info("resumed %s at step %d (epoch %d)", model.name, progress["step"], progress["epoch"])
    return model, data, options, progress


def train_zoo_model(options: ZooTrainOptions) -> dict[str, Any]:
    """Train until ``minutes`` of this invocation pass or ``max_steps`` total steps are done.

    Returns a summary (steps, epochs, seconds, batch size, last logged values, files written).
    """
    from torch.utils.tensorboard import SummaryWriter

    model, data, options, progress = open_run(options)
    start = time.monotonic()  # the budget includes fitting the clusters of a self-conditioned GAN
    with _fitting_threads():
        data.labels = model.training_labels(data.images, data.labels, options.seed)
    tigas, scheduler = _build_tigas(options)
    writer = SummaryWriter(str(Path(options.out) / "tb"))
    classes = f", {len(data.class_names)} classes" if model.conditional else ""  # an unconditional model ignores the folders
    log.info("%s on %s (%s): %d images%s, batches of %d, %d per epoch", model.name, options.device, options.precision, len(data),
             classes, options.batch_size, data.batches_per_epoch(options.batch_size))
    logs = _train_until_done(model, data, options, progress, start, writer, tigas if options.tigas_weight > 0 else None, scheduler)
    files = _finish(model, data, options, progress, writer, tigas)
    log.info("%s: stopped at step %d, epoch %d, %.0f s in total", model.name, progress["step"], progress["epoch"], progress["seconds"])
    return {"model": model.name, **progress, "batch_size": options.batch_size, "last": logs, "files": files}


def _train_until_done(model: ZooModel, data: ImageFolderTensors, options: ZooTrainOptions, progress: dict[str, Any], start: float,
                      writer, train_term, scheduler) -> dict[str, float]:
    """Steps (``progress`` counts them) until the time budget or ``max_steps``; a checkpoint every
    ``checkpoint_every_s``, a fixed-noise grid after each full epoch. Returns the last step's logs."""
    device = torch.device(options.device)
    precision = training_precision(device, options.precision)
    ckpt = Path(options.out) / "checkpoint"
    last_ckpt, logs = time.monotonic(), {}
    budget = options.minutes * 60.0
    seconds_before = float(progress["seconds"])

    def done() -> bool:
        return time.monotonic() - start >= budget or (options.max_steps is not None and progress["step"] >= options.max_steps)

    model.set_train(True)
    while not done():
        for real, labels in data.batches(options.batch_size, options.seed, progress["epoch"], progress["step_in_epoch"]):
            step = progress["step"]
            if scheduler is not None:
                scheduler.step(step)
            with precision:
                logs = model.train_step(real.to(device), labels.to(device), step, train_term)
            model.after_step(step)
            progress.update(step=step + 1, step_in_epoch=progress["step_in_epoch"] + 1,
                            seconds=seconds_before + time.monotonic() - start)
            if step % options.log_every == 0:
                for key, value in logs.items():
                    writer.add_scalar(key, value, step)
                if train_term is not None:
                    writer.add_scalar("tigas/weight", train_term.weight, step)
            if done():
                break
            if time.monotonic() - last_ckpt >= options.checkpoint_every_s:
                _save(model, ckpt, progress, options, data)
                last_ckpt = time.monotonic()
        else:  # a full epoch: fixed-noise grid for eyeballing progress
            progress.update(epoch=progress["epoch"] + 1, step_in_epoch=0)
            grid = model.sample(options.grid_size, seed=options.seed)
            save_grid(grid, Path(options.out) / "samples" / f"epoch_{progress['epoch']:04d}.png")
            writer.add_images("samples", grid, progress["step"])
            model.set_train(True)
            log.info("epoch %d done (step %d, %.0f s) %s", progress["epoch"], progress["step"], progress["seconds"],
                     json.dumps({k: round(v, 4) for k, v in logs.items()}))
    return logs


def _finish(model: ZooModel, data: ImageFolderTensors, options: ZooTrainOptions, progress: dict[str, Any], writer, tigas) -> list[str]:
    """The last checkpoint, the final grid and (with TIGAS) the grid sorted by score; the files written."""
    ckpt = Path(options.out) / "checkpoint"
    samples_dir = Path(options.out) / "samples"
    _save(model, ckpt, progress, options, data)
    final = model.sample(options.grid_size, seed=options.seed)
    save_grid(final, samples_dir / "final.png")
    writer.add_images("samples", final, progress["step"])
    files = [str(ckpt.with_suffix(".safetensors")), str(samples_dir / "final.png")]
    if tigas is not None:
        with torch.no_grad():
            scores = tigas.scorer(final).flatten().cpu()  # the samples are on the CPU
        order = torch.argsort(scores, descending=True)
        save_grid(final[order], samples_dir / "quality_sorted.png")
        files.append(str(samples_dir / "quality_sorted.png"))
        writer.add_scalar("tigas/final_mean_score", float(scores.mean()), progress["step"])
    writer.close()
    return files
