"""Train a TIGAS model from a YAML config (flags override it); also runs under torchrun."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("tigas.train")

# flag -> dotted config key; the flag's value replaces the YAML's
OVERRIDES = {
    "img_size": "model.img_size", "adapter_channels": "model.adapter_channels", "feature_dim": "model.feature_dim",
    "epochs": "training.num_epochs", "batch_size": "training.batch_size", "lr": "training.learning_rate",
    "output_dir": "training.output_dir", "seed": "training.seed", "device": "training.device",
    "max_minutes": "training.max_minutes", "num_threads": "training.num_threads",
    "train_split": "data.train_split", "augment_level": "data.augment_level",
    "holdout_generators": "data.holdout_generators", "samples_per_epoch": "data.samples_per_epoch",
    "num_workers": "data.num_workers",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("configs/default.yaml"), help="YAML config (default: %(default)s)")
    parser.add_argument("--data", action="append", default=[], metavar="DIR_OR_CSV",
                        help="data folder or CSV index (repeatable; replaces data.sources)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    parser.add_argument("--export", type=Path, metavar="DIR", help="also copy the final calibrated weights here (e.g. assets/)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any config key")
    for flag, key in OVERRIDES.items():
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None, help=f"overrides {key}")


def run(args: argparse.Namespace) -> int:
    from tigas_core.overrides import split_assignment
    from tigas_core.training import TrainConfig, Trainer

    config = TrainConfig.from_yaml(args.config) if args.config.is_file() else None
    if config is None:
        log.error("%s: config file not found", args.config)
        return 2
    if args.data:
        config.data.sources = [str(p) for p in args.data]
    for flag, key in OVERRIDES.items():
        value = getattr(args, flag)
        if value is not None:
            config.set(key, value)
    for item in args.set:
        config.set(*split_assignment(item))
    if not config.data.sources:
        log.error("no training data: pass --data DIR (or set data.sources in the config)")
        return 2
    trainer = Trainer(config)
    final = trainer.fit(resume=args.resume)
    if final is not None and args.export:
        from tigas_core.model import TIGASModel

        TIGASModel.from_pretrained(final).save_pretrained(args.export)
        log.info("exported weights to %s", args.export)
    return 0
