"""TIGASMetric: the realism score as a torchmetrics Metric (update / compute / reset, DDP-synced)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from tigas_core.model import BRANCHES, TIGASModel


class TIGASMetric(Metric):
    """Mean TIGAS score (and per-branch component scores) over everything passed to `update`.

    ``model``: a `TIGAS`, a `TIGASModel`, or None for the default `TIGAS()`. With
    ``use_model=False`` the metric aggregates precomputed scores ([B] or [B,1] tensors), e.g. the
    ``score`` column of `TIGAS.compute_directory`, whose NaN rows (files that failed) are left out.
    """

    is_differentiable = True
    higher_is_better = True
    full_state_update = False

    def __init__(self, model: Any = None, use_model: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.use_model = use_model
        self.tigas = _as_tigas(model) if use_model else None
        if self.tigas is not None:
            # A child module (as torchmetrics' LPIPS keeps its network), so metric.to(device) moves
            # the frozen network with the states and TIGAS sends images where it now is.
            self.scorer = self.tigas.model
        self.add_state("score_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for branch in BRANCHES:
            self.add_state(f"{branch}_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _batch_scores(self, images: Any) -> dict[str, torch.Tensor]:
        if not self.use_model:
            scores = images if isinstance(images, torch.Tensor) else torch.tensor(np.asarray(images, dtype=np.float32))
            scores = scores.float().reshape(-1)
            return {"score": scores[~torch.isnan(scores)]}  # NaN marks a file that could not be scored
        out = self.tigas(images, return_features=True)
        result = {"score": out["score"].reshape(-1)}
        result.update({f"{b}_score": out["components"][b].reshape(-1) for b in BRANCHES})
        result["branch_weights"] = out["branch_weights"]
        return result

    def _accumulate(self, batch: dict[str, torch.Tensor]) -> None:
        self.score_sum += batch["score"].detach().double().sum().to(self.score_sum.device)
        self.count += batch["score"].numel()
        for branch in BRANCHES:
            if f"{branch}_score" in batch:
                state = getattr(self, f"{branch}_sum")
                state += batch[f"{branch}_score"].detach().double().sum().to(state.device)

    def update(self, images: Any) -> None:
        self._accumulate(self._batch_scores(images))

    def compute(self) -> dict[str, torch.Tensor]:
        """Means over all updates: score and (with a model) each branch's component score; NaN
        before any update (torchmetrics also warns), never a score of 0 that looks measured."""
        count = self.count.double()
        result = {"score": (self.score_sum / count).float()}
        if self.use_model:
            result.update({f"{b}_score": (getattr(self, f"{b}_sum") / count).float() for b in BRANCHES})
        return result

    def forward(self, images: Any, return_components: bool = False):
        """Scores of this batch (kept differentiable), also accumulated into the running state."""
        batch = self._batch_scores(images)
        self._accumulate(batch)
        self._update_count += 1
        self._computed = None
        return batch if return_components else batch["score"]


def _as_tigas(model: Any):
    from tigas_core.api import TIGAS

    if model is None:
        return TIGAS()
    if isinstance(model, TIGASModel):
        return TIGAS(model=model)
    return model
