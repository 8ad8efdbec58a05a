"""Training objective: score regression + auxiliary classification + real/fake margin ranking.

* regression: binary cross-entropy between the raw score logit and the label (1 = real), so the
  score is a probability before calibration ever touches it;
* classification: cross-entropy of the auxiliary 2-way head (index 1 = real);
* ranking: every real image in the batch should out-score every fake one by a margin (on the
  logit), which is what AUROC measures;
* components: a small BCE on each branch's own head so the per-branch scores shown to users mean
  "this branch thinks real", not arbitrary numbers.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F


@dataclasses.dataclass
class LossWeights:
    regression: float = 1.0
    classification: float = 0.5
    ranking: float = 0.5
    components: float = 0.1
    margin: float = 1.0
    # Targets eps / 1 - eps instead of 0 / 1: keeps logits from saturating on a few hundred fakes,
    # so unseen images get graded scores instead of confident wrong ones.
    label_smoothing: float = 0.0


def margin_ranking(logit: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean hinge over all (real, fake) pairs in the batch; zero when the batch has one class only."""
    real, fake = logit[labels > 0.5], logit[labels <= 0.5]
    if real.numel() == 0 or fake.numel() == 0:
        return logit.sum() * 0.0
    return F.relu(margin - (real[:, None] - fake[None, :])).mean()


def tigas_training_loss(outputs: dict, labels: torch.Tensor, weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (as floats, for logging). labels: [B] float, 1 = real."""
    raw = outputs["raw_logit"].squeeze(1).float()
    targets = labels * (1 - 2 * weights.label_smoothing) + weights.label_smoothing
    parts = {
        "regression": F.binary_cross_entropy_with_logits(raw, targets),
        "classification": F.cross_entropy(outputs["logits"].float(), labels.long(), label_smoothing=2 * weights.label_smoothing),
        "ranking": margin_ranking(raw, labels, weights.margin),
        "components": torch.stack(
            [F.binary_cross_entropy_with_logits(v.squeeze(1).float(), targets) for v in outputs["component_logits"].values()]
        ).mean(),
    }
    total = sum(getattr(weights, name) * value for name, value in parts.items())
    return total, {name: float(value.detach()) for name, value in parts.items()}
