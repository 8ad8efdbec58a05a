"""Training configuration: nested sections read from YAML, overridable from the command line."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from tigas_core.config import TIGASConfig
from tigas_core.overrides import coerce_like
from tigas_core.training.losses import LossWeights


@dataclasses.dataclass
class DataSection:
    sources: list[str] = dataclasses.field(default_factory=list)  # folders and/or CSV indexes
    train_split: float = 0.8
    val_split: float = 0.1
    holdout_generators: list[str] = dataclasses.field(default_factory=list)
    augment_level: str = "native"
    samples_per_epoch: int = 4096  # balanced draws per epoch (there are ~50x more reals than fakes)
    generator_balance: float = 0.5  # a generator's share of the fakes grows as (its image count) ** this
    num_workers: int = 1
    cache_images: bool = True


@dataclasses.dataclass
class TrainingSection:
    num_epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.05
    grad_accumulation: int = 1
    grad_clip: float = 1.0
    early_stopping_patience: int = 10
    amp: bool = True  # only takes effect on CUDA
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0  # torch CPU threads; 0 keeps torch's default
    output_dir: str = "runs/tigas"
    log_images_every: int = 1  # epochs between TensorBoard image grids (0 = never)
    max_steps_per_epoch: int = 0  # 0 = the whole epoch; tests use small numbers
    max_minutes: float = 0.0  # stop cleanly after this much wall time (0 = no limit)


@dataclasses.dataclass
class TrainConfig:
    model: TIGASConfig = dataclasses.field(default_factory=TIGASConfig)  # the model's own config: every field settable
    data: DataSection = dataclasses.field(default_factory=DataSection)
    training: TrainingSection = dataclasses.field(default_factory=TrainingSection)
    loss: LossWeights = dataclasses.field(default_factory=LossWeights)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        config = cls()
        for section, entries in (values or {}).items():
            if not hasattr(config, section) or not isinstance(entries, dict):
                raise ValueError(f"unknown config section {section!r}; expected model, data, training, loss")
            for key, value in entries.items():
                config.set(f"{section}.{key}", value)
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})

    def set(self, dotted_key: str, value: Any) -> None:
        """Set ``section.key`` to ``value``, converted to the field's kind (`tigas_core.overrides.coerce_like`)."""
        section_name, _, key = dotted_key.partition(".")
        section = getattr(self, section_name, None)
        fields = {f.name for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else set()
        if key not in fields:
            raise ValueError(f"unknown config key {dotted_key!r}")
        setattr(section, key, coerce_like(value, getattr(section, key), dotted_key))
