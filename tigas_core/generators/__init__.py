"""The generator zoo: small CIFAR-scale generators that TIGAS can be trained against and
that show TIGAS working as a training loss.

``build_model(name, config)`` makes a trainable model, ``load_for_sampling(checkpoint)`` the
generator alone; training lives in ``tigas_core.generators.train``.
"""
from __future__ import annotations

from typing import Any

from tigas_core.generators.base import ZooModel
from tigas_core.generators.common import load_checkpoint
from tigas_core.generators.ddpm import DDPM
from tigas_core.generators.gan import DCGAN, WGANGP, ConditionalGAN
from tigas_core.generators.progan import ProGAN
from tigas_core.generators.stylegan import StyleGAN
from tigas_core.generators.text2image import TextToImageGAN
from tigas_core.generators.vae import VAE

MODELS: dict[str, type[ZooModel]] = {cls.name: cls for cls in (DCGAN, WGANGP, ConditionalGAN, TextToImageGAN, VAE, DDPM, StyleGAN,
                                                            ProGAN)}


def build_model(name: str, config: dict[str, Any] | None = None, for_training: bool = True) -> ZooModel:
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](config, for_training=for_training)


def load_for_sampling(checkpoint: str, expected_model: str | None = None, use_ema: bool = True) -> ZooModel:
    """The sampling network of a training checkpoint or of a small exported one (``tigas zoo
    export``): the EMA weights when the checkpoint has them, unless ``use_ema`` is False."""
    tensors, meta = load_checkpoint(checkpoint)
    name = meta.get("model")
    if expected_model and name != expected_model:
        raise ValueError(f"{checkpoint}: checkpoint is a {name!r} model, not {expected_model!r}")
    config = MODELS[name].saved_config(meta) if name in MODELS else {}  # build_model rejects unknown names
    model = build_model(name, config, for_training=False)
    if not use_ema:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(f"{model.sampler}_ema.")}
    sampler = model.networks[model.sampler]
    dtype = next(sampler.parameters()).dtype
    model.load_state_tensors({k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}, {})
    sampler.eval()
    return model


__all__ = ["MODELS", "ZooModel", "build_model", "load_for_sampling", "DCGAN", "WGANGP", "ConditionalGAN", "VAE", "DDPM", "StyleGAN",
           "ProGAN", "TextToImageGAN"]
