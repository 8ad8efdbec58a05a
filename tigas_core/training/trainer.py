"""The TIGAS trainer: one code path for CPU, one GPU, and several processes under torchrun.

Per epoch it draws a class/generator-balanced sample of augmented training views, optimises the
combined loss with AdamW (warmup + cosine, gradient accumulation and clipping, AMP on CUDA),
measures validation AUROC, and writes a complete checkpoint atomically (a new folder, then a
pointer file swapped in with os.replace), so a run killed at any moment resumes from the last
finished epoch. When training ends the best epoch's weights are calibrated on the validation split,
given the real-image reference spectrum, and saved with `tigas_core.hub.save_pretrained`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from sklearn.metrics import average_precision_score, roc_auc_score
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from tigas_core.api import resolve_device
from tigas_core.config import atomic_write_text
from tigas_core.data import BalancedSampler, ImageDataset, ImageRecord, describe_split, load_records, split_records
from tigas_core.data.augment import recolour
from tigas_core.data.records import REAL_LABEL
from tigas_core.model import TIGASModel, create_tigas_model
from tigas_core.model.backbone import load_imagenet_weights
from tigas_core.rng import rng_state, set_rng_state
from tigas_core.training.calibration import apply_calibration, fit_platt, set_reference_profile
from tigas_core.training.config import TrainConfig
from tigas_core.training.losses import tigas_training_loss

log = logging.getLogger("tigas.train")
REFERENCE_IMAGES = 512  # real training images averaged into the reference spectrum


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _load_weights(model: TIGASModel, folder: Path) -> None:
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device="cpu"))


class Trainer:
    """Train a TIGAS model on image records; see the module docstring for what each epoch does."""

    def __init__(self, config: TrainConfig, records: list[ImageRecord] | None = None):
        self.config = config
        t = config.training
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() and t.device != "cpu" else "gloo")
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.is_main = self.rank == 0
        self.device = self._pick_device(t.device)
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        seed_everything(t.seed + self.rank)

        self.out = Path(t.output_dir)
        records = records if records is not None else load_records(config.data.sources)
        self.splits = split_records(
            records, seed=t.seed, train_split=config.data.train_split, val_split=config.data.val_split,
            holdout_generators=config.data.holdout_generators,
        )
        if not self.splits["train"] or not self.splits["val"]:
            raise ValueError("the split left no training or no validation images; add data or change train_split/val_split")
        if self.is_main:
            log.info("split (seed %d, held out: %s)\n%s", t.seed, ",".join(config.data.holdout_generators) or "none",
                     describe_split(self.splits))

        m = config.model
        self.model = create_tigas_model(**dataclasses.asdict(m))
        load_imagenet_weights(self.model.perceptual.trunk, self.model.config.backbone)  # a resume overwrites it
        self.model = self.model.to(self.device)
        self.module = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.module, device_ids=ids)

        self._build_loaders(config)
        self.steps_per_epoch = len(self.train_loader) // t.grad_accumulation
        if t.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, t.max_steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError("samples_per_epoch is smaller than one (accumulated) batch")
        total_steps = self.steps_per_epoch * t.num_epochs
        warmup_steps = max(1, round(t.warmup_epochs * self.steps_per_epoch))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: cosine_with_warmup(step, warmup_steps, total_steps, t.min_lr_ratio)
        )
        self.use_amp = bool(t.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

        self.state: dict[str, Any] = {"epoch": 0, "global_step": 0, "best": None, "best_epoch": 0, "stale_epochs": 0, "history": []}
        self.writer = None
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "logs"))

    def _build_loaders(self, config: TrainConfig) -> None:
        """Datasets, the balanced training sampler (this rank's share) and both loaders."""
        t, data, img_size = config.training, config.data, config.model.img_size
        self.train_set = ImageDataset(self.splits["train"], img_size, train=True, augment_level=data.augment_level,
                                      seed=t.seed, cache=data.cache_images)
        self.val_set = ImageDataset(self.splits["val"], img_size, train=False, cache=data.cache_images)
        self.sampler = BalancedSampler(self.splits["train"], data.samples_per_epoch, seed=t.seed,
                                       rank=self.rank, world_size=self.world_size, generator_balance=data.generator_balance)
        loader_args: dict[str, Any] = dict(num_workers=data.num_workers, persistent_workers=data.num_workers > 0,
                                           pin_memory=self.device.type == "cuda")
        self.train_loader = DataLoader(self.train_set, batch_size=t.batch_size, sampler=self.sampler, drop_last=True, **loader_args)
        val_sampler = DistributedSampler(self.val_set, shuffle=False) if self.world_size > 1 else None
        self.val_loader = DataLoader(self.val_set, batch_size=t.batch_size * 2, sampler=val_sampler, **loader_args)

    @staticmethod
    def _pick_device(name: str) -> torch.device:
        device = resolve_device(name)
        if device.type == "cuda" and dist.is_initialized():  # each rank its own GPU, also for an explicit cuda:N
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
        return device

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_root(self) -> Path:
        return self.out / "checkpoints"

    def save_checkpoint(self) -> Path:
        """Write the epoch's checkpoint to a fresh folder, then point latest.json at it (rank 0 only)."""
        from tigas_core.hub import save_pretrained

        epoch = self.state["epoch"]
        folder = self.checkpoint_root / f"epoch-{epoch:04d}"
        if folder.exists():
            shutil.rmtree(folder)
        save_pretrained(self.module, folder)
        torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
        state = {**self.state, "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "train_config": self.config.to_dict(), "rng": {key: s.tolist() for key, s in rng_state().items()}}
        atomic_write_text(folder / "trainer_state.json", json.dumps(state, indent=1))
        atomic_write_text(self.checkpoint_root / "latest.json", json.dumps({"epoch": epoch, "folder": folder.name}) + "\n")
        for old in self.checkpoint_root.glob("epoch-*"):
            if old != folder and old.name != f"epoch-{self.state['best_epoch']:04d}":
                shutil.rmtree(old, ignore_errors=True)
        return folder

    def resume(self) -> bool:
        """Continue from the last complete checkpoint in output_dir; False if there is none."""
        pointer = self.checkpoint_root / "latest.json"
        if not pointer.is_file():
            return False
        folder = self.checkpoint_root / json.loads(pointer.read_text())["folder"]
        _load_weights(self.module, folder)
        self.module.to(self.device)
        # On the CPU: load_state_dict moves the moments to the parameters but leaves Adam's step
        # counters where they are, and on a GPU each would cost a device sync every step.
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
        saved = json.loads((folder / "trainer_state.json").read_text())
        self.scheduler.load_state_dict(saved.pop("scheduler"))
        scaler = saved.pop("scaler")
        if scaler and self.scaler.is_enabled():  # empty when the run so far had no AMP (a CPU run resumed on a GPU)
            self.scaler.load_state_dict(scaler)
        set_rng_state({key: torch.tensor(s, dtype=torch.uint8) for key, s in saved.pop("rng").items()})
        saved.pop("train_config", None)
        self.state.update(saved)
        if self.is_main:
            log.info("resumed from %s (epoch %d, step %d)", folder, self.state["epoch"], self.state["global_step"])
        return True

    # ----------------------------------------------------------------- loops
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16) if self.use_amp else contextlib.nullcontext()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        t = self.config.training
        self.model.train()
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        totals: dict[str, float] = {}
        batches = 0
        progress = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}", disable=not self.is_main,
                        mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
        iterator = iter(self.train_loader)
        for step in range(self.steps_per_epoch):
            self.optimizer.zero_grad(set_to_none=True)
            for micro in range(t.grad_accumulation):
                images, labels, _ = next(iterator)
                images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
                sync = micro == t.grad_accumulation - 1 or self.world_size == 1
                with (contextlib.nullcontext() if sync else self.model.no_sync()), self._autocast():
                    loss, parts = tigas_training_loss(self.model(images), labels, self.config.loss)
                    self.scaler.scale(loss / t.grad_accumulation).backward()
                for name, value in {"total": float(loss.detach()), **parts}.items():
                    totals[name] = totals.get(name, 0.0) + value
                batches += 1
                if self.is_main and step == 0 and micro == 0 and t.log_images_every and epoch % t.log_images_every == 0:
                    self.writer.add_images("train/batch", images[:16].float().cpu(), epoch)
            if t.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.state["global_step"] += 1
            if self.is_main:
                self.writer.add_scalar("train/loss", float(loss.detach()), self.state["global_step"])
                self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.state["global_step"])
                progress.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
                progress.update()
        progress.close()
        means = {name: value / batches for name, value in totals.items()}
        return self._all_reduce_mean(means)

    def _all_reduce_mean(self, values: dict[str, float]) -> dict[str, float]:
        if self.world_size == 1:
            return values
        names = sorted(values)
        tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return {n: float(v) / self.world_size for n, v in zip(names, tensor.tolist())}

    @torch.no_grad()
    def predict(self, loader: DataLoader, gather: bool = True, greyscale: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(raw logits, labels) for every item of the loader in dataset order; ``gather`` joins all ranks' parts;
        ``greyscale``: of the images' greyscale copies."""
        self.model.eval()
        indices, logits, labels = [], [], []
        for images, batch_labels, batch_indices in loader:
            images = images.to(self.device)
            with self._autocast():
                out = self.module(recolour(images, 0.0) if greyscale else images)
            logits.append(out["raw_logit"].float().squeeze(1).cpu())
            labels.append(batch_labels)
            indices.append(batch_indices)
        local = (torch.cat(indices), torch.cat(logits), torch.cat(labels))
        if gather and self.world_size > 1:
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, local)
            local = tuple(torch.cat([g[i] for g in gathered]) for i in range(3))
        order = torch.argsort(local[0])
        index, logit, label = (x[order] for x in local)
        keep = torch.ones_like(index, dtype=torch.bool)
        keep[1:] = index[1:] != index[:-1]  # DistributedSampler pads with repeats
        return logit[keep].numpy(), label[keep].numpy()

    def validate(self) -> dict[str, float]:
        logits, labels = self.predict(self.val_loader)
        metrics = {"count": float(len(labels))}
        if 0 < labels.sum() < len(labels):
            metrics["auroc"] = float(roc_auc_score(labels, logits))
            metrics["ap"] = float(average_precision_score(labels, logits))
            weights = np.where(labels > 0.5, 0.5 / labels.sum(), 0.5 / (1 - labels).sum())
            losses = np.logaddexp(0.0, np.where(labels > 0.5, -logits, logits))
            metrics["balanced_bce"] = float(np.sum(weights * losses))
        return metrics

    def fit(self, resume: bool = False) -> Path | None:
        """Train until num_epochs, early stopping or max_minutes; return the final weights folder (rank 0)."""
        t = self.config.training
        if resume:
            self.resume()
        started = time.monotonic()
        if self.is_main:
            atomic_write_text(self.out / "train_config.json", json.dumps(self.config.to_dict(), indent=2))
            atomic_write_text(self.out / "split.txt", describe_split(self.splits) + "\n")
        while self.state["epoch"] < t.num_epochs and self.state["stale_epochs"] < t.early_stopping_patience:
            epoch = self.state["epoch"] + 1
            tick = time.monotonic()
            train_metrics = self.train_epoch(epoch)
            train_seconds = time.monotonic() - tick
            val_metrics = self.validate()
            elapsed = time.monotonic() - tick
            self.state["epoch"] = epoch
            key = [val_metrics.get("auroc", 0.0), -val_metrics.get("balanced_bce", math.inf)]
            improved = self.state["best"] is None or key > self.state["best"]
            if improved:
                self.state.update(best=key, best_epoch=epoch, stale_epochs=0)
            else:
                self.state["stale_epochs"] += 1
            images_seen = self.steps_per_epoch * t.grad_accumulation * t.batch_size * self.world_size
            record = {"epoch": epoch, "seconds": round(elapsed, 1), "train_img_per_s": round(images_seen / train_seconds, 1),
                      **{f"train_{k}": round(v, 5) for k, v in train_metrics.items()},
                      **{f"val_{k}": round(v, 5) for k, v in val_metrics.items()}}
            self.state["history"].append(record)
            if self.is_main:
                for name, value in record.items():
                    if name != "epoch":
                        self.writer.add_scalar(f"epoch/{name}", value, epoch)
                self.writer.flush()
                log.info("epoch %d: %s%s", epoch, json.dumps(record), " (best)" if improved else "")
                self.save_checkpoint()
            if self.world_size > 1:
                dist.barrier()
            if t.max_minutes and (time.monotonic() - started) / 60 >= t.max_minutes:
                if self.is_main:
                    log.info("stopping after %.1f min (max_minutes)", (time.monotonic() - started) / 60)
                break
        final = self.finalize() if self.is_main else None
        if self.world_size > 1:
            dist.barrier()
        if self.writer is not None:
            self.writer.close()
        return final

    def finalize(self) -> Path:
        """Best epoch's weights + calibration on val + real reference spectrum -> output_dir/final."""
        from tigas_core.hub import save_pretrained

        best = self.checkpoint_root / f"epoch-{self.state['best_epoch']:04d}"
        if best.is_dir():
            _load_weights(self.module, best)
        apply_calibration(self.module, 1.0, 0.0)
        val_loader = DataLoader(self.val_set, batch_size=self.config.training.batch_size * 2)
        temperature, bias = fit_platt(*self.predict(val_loader, gather=False))
        greyscale = fit_platt(*self.predict(val_loader, gather=False, greyscale=True))  # the read-out reads colour
        apply_calibration(self.module, temperature, bias, greyscale=greyscale)
        reals = [i for i, r in enumerate(self.splits["train"]) if r.label == REAL_LABEL]
        chosen = random.Random(self.config.training.seed).sample(reals, min(REFERENCE_IMAGES, len(reals)))
        reference_set = ImageDataset(self.splits["train"], self.config.model.img_size, train=False, cache=False)
        n_reference = set_reference_profile(
            self.module, (images for images, _, _ in DataLoader(Subset(reference_set, chosen), batch_size=64))
        )
        final = self.out / "final"
        save_pretrained(self.module, final)
        summary = {"best_epoch": self.state["best_epoch"], "best_val_auroc": (self.state["best"] or [None])[0],
                   "calibration_temperature": temperature, "calibration_bias": bias, "greyscale_calibration": greyscale,
                   "reference_images": n_reference,
                   "epochs_run": self.state["epoch"], "history": self.state["history"],
                   "holdout_generators": self.config.data.holdout_generators,
                   "split": {name: len(records) for name, records in self.splits.items()}}
        atomic_write_text(self.out / "training_summary.json", json.dumps(summary, indent=2))
        log.info("final weights in %s (best epoch %d, T=%.3f, b=%.3f)", final, self.state["best_epoch"], temperature, bias)
        return final

