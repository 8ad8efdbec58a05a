"""Training: loss, trainer (CPU/GPU/DDP), calibration."""
from tigas_core.training.calibration import apply_calibration, fit_platt, set_reference_profile
from tigas_core.training.config import DataSection, TrainConfig, TrainingSection
from tigas_core.training.losses import LossWeights, margin_ranking, tigas_training_loss
from tigas_core.training.trainer import Trainer, cosine_with_warmup

__all__ = [
    "apply_calibration", "fit_platt", "set_reference_profile",
    "DataSection", "TrainConfig", "TrainingSection",
    "LossWeights", "margin_ranking", "tigas_training_loss",
    "Trainer", "cosine_with_warmup",
]
