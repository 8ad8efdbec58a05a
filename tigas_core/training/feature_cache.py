"""Training from a cache of what the frozen parts of TIGAS see: each view measured once.

Why: with the trunk frozen, `TIGASModel.measure` (trunk maps, spectral and statistical
measurements) is fixed for a given view, and it is nearly all of the cost. Measuring each view
once instead of at every step makes an epoch about 10x cheaper on a CPU, which is what makes
leave-one-generator-out retraining affordable. Augmentation variety comes from several views per
image (other crops, scales, JPEG qualities: `tigas_core.data.augment.native_view`).

Evaluation views are cached the same way, one per condition: ``clean`` is exactly the view
`TIGAS()` scores, ``web`` the file as an upload ends up (shorter side 256 px, JPEG q75).
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import random
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tigas_core.data.augment import AugmentSpec, native_view, recolour, upload_copy, upload_view
from tigas_core.data.dataset import balanced_weights
from tigas_core.data.records import ImageRecord
from tigas_core.io import TIGASInputError, load_image, preprocess
from tigas_core.model import TIGASModel
from tigas_core.model.perceptual_branch import tap_statistics
from tigas_core.training.losses import LossWeights, tigas_training_loss

log = logging.getLogger("tigas.train")

WEB_SIDE, WEB_QUALITY = 256, 75


def web_copy(image: torch.Tensor) -> torch.Tensor:
    """[3,H,W] as an upload ends up: shorter side WEB_SIDE px (up or down), JPEG q WEB_QUALITY."""
    return upload_copy(image, WEB_SIDE, WEB_QUALITY)


EVAL_CONDITIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"clean": lambda image: image, "web": web_copy}


def condition_of(rows: np.ndarray) -> np.ndarray:
    """Index into EVAL_CONDITIONS of each row of an evaluation cache: `evaluation_views` gives every
    image one view per condition, in order, so row r holds condition r % len(EVAL_CONDITIONS)."""
    return np.asarray(rows) % len(EVAL_CONDITIONS)


@dataclasses.dataclass
class FeatureCache:
    """Measured views: ``measured`` as `TIGASModel.measure` returns it (trunk maps in fp16),
    ``labels`` [N] (1 = real) and ``record_index`` [N] into ``records``."""

    measured: dict
    labels: torch.Tensor
    record_index: torch.Tensor
    records: list[ImageRecord]
    _statistics: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: torch.Tensor) -> dict:
        """The measurements of ``rows`` in float32, ready for `TIGASModel.forward(measured=...)`."""
        return {
            "trunk": [t[rows].float() for t in self.measured["trunk"]],
            "spectral": {k: v[rows].float() for k, v in self.measured["spectral"].items()},
            "statistical": self.measured["statistical"][rows].float(),
        }

    def tap_statistics(self, correlated: tuple[int, ...] = ()) -> torch.Tensor:
        """`perceptual_branch.tap_statistics` of every cached view [N, features] (what the read-out
        reads), computed once per choice of ``correlated`` in chunks: the trunk maps of all views do
        not fit in memory as float32."""
        if correlated not in self._statistics:
            self._statistics[correlated] = torch.cat([tap_statistics([t[i : i + 512] for t in self.measured["trunk"]], correlated)
                                                      for i in range(0, len(self), 512)])
        return self._statistics[correlated]

    def save(self, path: str | Path) -> None:
        tensors = {f"trunk.{i}": t.contiguous() for i, t in enumerate(self.measured["trunk"])}
        tensors.update({f"spectral.{k}": v.contiguous() for k, v in self.measured["spectral"].items()})
        tensors.update(statistical=self.measured["statistical"].contiguous(), labels=self.labels, record_index=self.record_index)
        records = json.dumps([dataclasses.asdict(r) for r in self.records])
        save_file(tensors, str(path), metadata={"records": records})

    @classmethod
    def load(cls, path: str | Path) -> FeatureCache:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            records = [ImageRecord(**r) for r in json.loads(handle.metadata()["records"])]
        tensors = load_file(str(path))
        trunk = [tensors[f"trunk.{i}"] for i in range(sum(k.startswith("trunk.") for k in tensors))]
        spectral = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("spectral.")}
        return cls({"trunk": trunk, "spectral": spectral, "statistical": tensors["statistical"]},
                   tensors["labels"], tensors["record_index"], records)

    @classmethod
    def concat(cls, caches: list[FeatureCache]) -> FeatureCache:
        """One cache of several (record indices renumbered)."""
        offsets = np.cumsum([0] + [len(c.records) for c in caches[:-1]])
        first = caches[0].measured
        return cls(
            {"trunk": [torch.cat([c.measured["trunk"][i] for c in caches]) for i in range(len(first["trunk"]))],
             "spectral": {k: torch.cat([c.measured["spectral"][k] for c in caches]) for k in first["spectral"]},
             "statistical": torch.cat([c.measured["statistical"] for c in caches])},
            torch.cat([c.labels for c in caches]),
            torch.cat([c.record_index + int(o) for c, o in zip(caches, offsets)]),
            [r for c in caches for r in c.records],
        )


def _append(parts: dict, measured: dict) -> None:
    parts.setdefault("trunk", [[] for _ in measured["trunk"]])
    for store, tensor in zip(parts["trunk"], measured["trunk"]):
        store.append(tensor.half())
    for key, value in measured["spectral"].items():
        parts.setdefault(("spectral", key), []).append(value.float())
    parts.setdefault("statistical", []).append(measured["statistical"].float())


def _joined(pieces: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat of ``pieces``, emptying the list: the batches of one measurement at a time are held
    twice, not all of them (a training cache's trunk maps are several GiB)."""
    joined = torch.cat(pieces)
    pieces.clear()
    return joined


def _views_of(record_number: int, record: ImageRecord, make_views: Callable[[torch.Tensor, random.Random], list[torch.Tensor]],
              seed: int) -> list[torch.Tensor]:
    try:
        image = load_image(record.path)
    except TIGASInputError as exc:
        log.warning("skipping unreadable image: %s", exc)
        return []
    return make_views(image, random.Random(f"{seed}:{record_number}:{record.path}"))


def views_in_order(pool: Executor, records: list[ImageRecord], make_views, seed: int, ahead: int) -> Iterator[list[torch.Tensor]]:
    """Each record's views in order, decoded by ``pool`` at most ``ahead`` records ahead of the
    caller. (`Executor.map` submits every record at once, and decoded views pile up faster than the
    model measures them: 8 views of each of 2,724 records filled 24 GiB and were killed.)"""
    items = enumerate(records)
    pending = collections.deque(pool.submit(_views_of, number, record, make_views, seed)
                                for number, record in itertools.islice(items, ahead))
    while pending:
        views = pending.popleft().result()
        pending.extend(pool.submit(_views_of, number, record, make_views, seed) for number, record in itertools.islice(items, 1))
        yield views


def measure_records(model: TIGASModel, records: list[ImageRecord], make_views, *, seed: int = 0, batch_size: int = 32,
                    workers: int = 2, progress: bool = True, ahead: int = 64) -> FeatureCache:
    """Measure ``make_views(image, rng)``'s views of every record with the model's frozen parts."""
    from tqdm.auto import tqdm

    model.eval()
    parts: dict = {}
    labels, owners, pending = [], [], []

    def flush() -> None:
        with torch.inference_mode():
            _append(parts, model.measure(torch.stack([view for view, _ in pending])))
        labels.extend(float(records[i].label) for _, i in pending)
        owners.extend(i for _, i in pending)
        pending.clear()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = views_in_order(pool, records, make_views, seed, ahead)
        for number, views in enumerate(tqdm(decoded, total=len(records), desc="measuring views", disable=not progress)):
            pending.extend((view, number) for view in views)
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    measured = {
        "trunk": [_joined(store) for store in parts["trunk"]],
        "spectral": {key[1]: _joined(value) for key, value in parts.items() if isinstance(key, tuple)},
        "statistical": _joined(parts["statistical"]),
    }
    return FeatureCache(measured, torch.tensor(labels), torch.tensor(owners, dtype=torch.long), records)


def training_views(img_size: int, spec: AugmentSpec, views: int, small_views: int, upload_views: int = 0) -> Callable:
    """``views`` augmented views of an image at least img_size on its shorter side, ``small_views`` of a
    smaller one, then ``upload_views`` of either as an upload ends up (`augment.upload_view`)."""
    def make(image: torch.Tensor, rng: random.Random) -> list[torch.Tensor]:
        count = views if min(image.shape[-2:]) >= img_size else small_views
        return ([native_view(image, img_size, spec, rng) for _ in range(count)]
                + [upload_view(image, img_size, rng) for _ in range(upload_views)])
    return make


def evaluation_views(img_size: int) -> Callable:
    """One `preprocess` view per EVAL_CONDITIONS entry, in order (`condition_of` reads that layout),
    as `TIGAS()` would score the file."""
    def make(image: torch.Tensor, rng: random.Random) -> list[torch.Tensor]:
        return [preprocess(copy(image), img_size) for copy in EVAL_CONDITIONS.values()]
    return make


def greyscale_evaluation_views(img_size: int) -> Callable:
    """`evaluation_views` of the image's greyscale copy, turned grey before each condition: how a
    greyscale image is scored. The read-out reads colour, so the bundled weights calibrate
    greyscale images on these views' out-of-fold logits (`TIGASConfig.greyscale_calibration`)."""
    def make(image: torch.Tensor, rng: random.Random) -> list[torch.Tensor]:
        return [preprocess(copy(recolour(image, 0.0)), img_size) for copy in EVAL_CONDITIONS.values()]
    return make


def train_from_cache(model: TIGASModel, cache: FeatureCache, rows: torch.Tensor, *, steps: int, batch_size: int = 64,
                     learning_rate: float = 1e-3, weight_decay: float = 0.05, loss_weights: LossWeights | None = None,
                     generator_balance: float = 0.5, seed: int = 0, progress: bool = False) -> list[float]:
    """AdamW with warmup + cosine over ``steps`` class/source-balanced batches of the cached ``rows``;
    returns the loss per step. The trunk is not touched (it must be frozen)."""
    from tqdm.auto import tqdm

    from tigas_core.training.trainer import cosine_with_warmup

    if model.config.train_trunk:
        raise ValueError("a feature cache holds a frozen trunk's maps: train_trunk must be False")
    if steps == 0:
        return []
    loss_weights = loss_weights or LossWeights()
    keys = [(int(cache.labels[r]), balance_key(cache.records[int(cache.record_index[r])])) for r in rows]
    weights = balanced_weights(keys, generator_balance)
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_with_warmup(step, warmup, steps, 0.02))
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc="training", disable=not progress):
        batch = rows[torch.multinomial(weights, batch_size, replacement=True, generator=generator)]
        loss, _ = tigas_training_loss(model(measured=cache.take(batch)), cache.labels[batch], loss_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def balance_key(record: ImageRecord) -> str:
    """What sampling balances within a class: the generator of a fake, the source of a photo."""
    return record.source or record.generator


@torch.no_grad()
def predict_from_cache(model: TIGASModel, cache: FeatureCache, rows: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Raw (uncalibrated) logits of the cached ``rows``."""
    return logits_from_cache(model, cache, rows, batch_size)["score"]


@torch.no_grad()
def logits_from_cache(model: TIGASModel, cache: FeatureCache, rows: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """The raw score logit (``score``) and each branch's logit of the cached ``rows``."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(rows), batch_size):
        outputs = model(measured=cache.take(rows[start : start + batch_size]))
        for name, value in {"score": outputs["raw_logit"], **outputs["component_logits"]}.items():
            parts.setdefault(name, []).append(value[:, 0])
    return {name: torch.cat(values).numpy() for name, values in parts.items()} if parts else {"score": np.zeros(0, np.float32)}
