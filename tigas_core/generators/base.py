"""The contract every zoo model follows, so one training loop, one checkpoint format and one
`tigas generate` serve DCGAN, WGAN-GP, cGAN, VAE and DDPM alike."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from tigas_core.generators.common import EMA, flatten_optimizer, prefixed, restore_optimizer, to_unit, unprefixed


class ZooModel:
    """A generator plus whatever trains it (discriminator, encoder, optimizers, EMA).

    Subclasses set ``name``, ``defaults`` and ``sampler`` (the network that makes images), build
    ``self.networks`` / ``self.optimizers`` in ``build()`` and implement ``train_step`` and
    ``_sample``. Images are [-1, 1] inside the model and [0, 1] outside (``sample``).
    """

    name: ClassVar[str]
    sampler: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]
    conditional: bool  # takes class labels: set from the ``class_conditional`` config key (see `takes_labels`)
    latent_dim_key: ClassVar[str | None] = None  # config key of the latent size; None: no latent to truncate
    # Values that a checkpoint written before a config key existed stands for (it was trained that way).
    predates_key: ClassVar[dict[str, Any]] = {}
    # Networks besides the sampler that sampling needs (fitted priors); exported with it.
    sampling_extras: ClassVar[tuple[str, ...]] = ()
    # Training batch size unless `tigas zoo train --batch-size` says otherwise.
    batch_size: ClassVar[int] = 64
    # Latent spaces Perceptual Path Length can walk (`path_endpoints`): "z", and "w" for style-based models.
    path_spaces: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: dict[str, Any] | None = None, for_training: bool = True):
        unknown = set(config or {}) - set(self.defaults) - {"img_size", "n_classes"}
        if unknown:
            raise ValueError(f"{self.name}: unknown config keys {sorted(unknown)}; its keys are {', '.join(sorted(self.defaults))}")
        for key, value in (config or {}).items():
            self._check_type(key, value)
        self.config: dict[str, Any] = {"img_size": 32, "n_classes": 0, **self.defaults, **(config or {})}
        self.conditional = self.takes_labels(self.config)
        if self.conditional and int(self.config["n_classes"]) < 1:
            raise ValueError(f"a class-conditional {self.name} needs n_classes >= 1 (class sub-folders in --data)")
        if self.config["img_size"] < 8 or 2 ** round(math.log2(self.config["img_size"])) != self.config["img_size"]:
            raise ValueError(f"img_size must be a power of two >= 8, got {self.config['img_size']}")
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.device = torch.device("cpu")
        self.build(for_training)
        decay = float(self.config.get("ema", 0.0))
        self.ema = EMA(self.networks[self.sampler], decay) if (for_training and decay > 0) else None

    def _check_type(self, key: str, value: Any) -> None:
        """A setting must have its default's kind (a number for a number, true/false for a flag), so
        ``--set lr=abc`` fails here naming the key, not later inside an optimizer."""
        default = self.defaults.get(key)
        if default is None:
            return
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ValueError(f"{self.name}: {key} must be {type(default).__name__} like its default {default!r}, got {value!r}")

    @classmethod
    def takes_labels(cls, config: dict[str, Any]) -> bool:
        """Whether a model built from ``config`` is class-conditional (the trainer then passes the
        number of class folders as ``n_classes``): its ``class_conditional`` key, for models that have one."""
        return bool({**cls.defaults, **config}.get("class_conditional", False))

    @classmethod
    def saved_config(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """The config a checkpoint's ``meta`` was trained with: a key added after it was written
        takes the value that the checkpoint predates (``predates_key``)."""
        return {**cls.predates_key, **(meta.get("config") or {})}

    # --- to implement -------------------------------------------------------------------------
    def build(self, for_training: bool) -> None:
        raise NotImplementedError

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, step: int, tigas=None) -> dict[str, float]:
        """One optimisation step on a batch in [-1, 1]; returns scalars to log.

        ``tigas`` is an optional TIGASLoss; its term is added to the generator objective.
        """
        raise NotImplementedError

    def _sample(self, net: nn.Module, n: int, labels: torch.Tensor | None, noise: torch.Generator,
                truncation: float) -> torch.Tensor:
        raise NotImplementedError

    def path_endpoints(self, n: int, noise: torch.Generator, space: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """``n`` paths for Perceptual Path Length (`tigas_core.metrics.ppl`): start and end codes
        [n, ...] in latent ``space`` and the condition held fixed along each path (rows per path;
        a tensor, a tuple of them, or None), drawn from the seeded CPU ``noise``."""
        raise ValueError(f"{self.name}: has no latent code for a path length")

    def render_path(self, net: nn.Module, latents: torch.Tensor, context: Any, space: str) -> torch.Tensor:
        """Images in [-1, 1] of sampling network ``net`` at ``latents`` of ``space`` with ``context``
        (rows of `path_endpoints`'s)."""
        raise ValueError(f"{self.name}: has no latent code for a path length")

    def training_labels(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """The labels ``train_step`` gets for the training images (uint8 [N,3,H,W]): the class
        labels of the data, unless the model makes its own (self-conditioning on clusters)."""
        return labels

    def prepare_sampling(self, images: torch.Tensor, seed: int) -> None:
        """Called with the training images (uint8 [N,3,H,W]) before every checkpoint: fit whatever
        sampling needs beyond the networks' weights (the VAE's latent prior). Nothing by default."""

    # --- shared ---------------------------------------------------------------------------------
    def to(self, device: str | torch.device) -> ZooModel:
        """Move every network (and the EMA copy) to ``device``; call before training or sampling.
        Optimizer state follows its parameters when it is created or restored afterwards."""
        self.device = torch.device(device)
        for net in self.networks.values():
            net.to(self.device)
        if self.ema is not None:
            self.ema.module.to(self.device)
        return self

    def noise(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise on the model's device; a seeded (CPU) ``generator`` gives the
        same samples on every device."""
        return torch.randn(*shape, generator=generator).to(self.device)

    def latent(self, n: int, generator: torch.Generator | None = None, truncation: float = 1.0) -> torch.Tensor:
        """Latent codes z ~ N(0, I) scaled by ``truncation`` (psi): pulling z towards the mode of its
        prior trades variety for fidelity, the truncation trick of BigGAN and StyleGAN."""
        return self.noise(n, int(self.config[self.latent_dim_key]), generator=generator) * truncation

    def sampling_network(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.networks[self.sampler]

    def check_sampling(self, labels: torch.Tensor | None = None, truncation: float = 1.0) -> None:
        """Refuse what this model cannot sample: labels for an unconditional model or outside its
        classes, a truncation without a latent code or outside (0, 1]."""
        if labels is not None:
            if not self.conditional:
                raise ValueError(f"this {self.name} is not class-conditional: it takes no label")
            n_classes = int(self.config["n_classes"])
            if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < n_classes):
                raise ValueError(f"labels must be class indices 0-{n_classes - 1} for this {self.name}, "
                                 f"got {sorted(set(labels.tolist()) - set(range(n_classes)))[:5]}")
        if truncation != 1.0 and self.latent_dim_key is None:
            raise ValueError(f"truncation applies to models with a latent code (GANs, VAE), not {self.name!r}")
        if not 0.0 < truncation <= 1.0:
            raise ValueError(f"truncation must be in (0, 1], got {truncation}")

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, seed: int | None = None,
               truncation: float = 1.0) -> torch.Tensor:
        """``n`` images [n,3,H,W] in [0,1]; same seed, same images. Labels cycle over the classes
        for a conditional model unless given. ``truncation`` < 1 scales the latent codes (GANs, VAE;
        see `latent`)."""
        self.check_sampling(labels, truncation)
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        noise = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(2**31, ())))
        if self.conditional and labels is None:
            labels = torch.arange(n) % max(1, self.config["n_classes"])
        if labels is not None:
            labels = labels.to(self.device)
        try:
            out = self._sample(net, n, labels, noise, truncation)
        finally:
            net.train(was_training)
        return to_unit(out).float().cpu()

    def after_step(self, step: int) -> None:
        if self.ema is not None:
            self.ema.update(self.networks[self.sampler], step)

    def set_train(self, mode: bool = True) -> None:
        for net in self.networks.values():
            net.train(mode)

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Every tensor needed to resume (networks, EMA, optimizer moments) and the JSON rest."""
        tensors: dict[str, torch.Tensor] = {}
        for name, net in self.networks.items():
            tensors.update(prefixed(name, net.state_dict()))
        if self.ema is not None:
            tensors.update(prefixed(f"{self.sampler}_ema", self.ema.module.state_dict()))
        optim_meta = {}
        for name, opt in self.optimizers.items():
            opt_tensors, optim_meta[name] = flatten_optimizer(name, opt)
            tensors.update(opt_tensors)
        return tensors, {"optimizers": optim_meta}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        for name, net in self.networks.items():
            state = unprefixed(name, tensors)
            if state:
                net.load_state_dict(state)
        ema_state = unprefixed(f"{self.sampler}_ema", tensors)
        if ema_state:
            if self.ema is not None:
                self.ema.module.load_state_dict(ema_state)
            else:  # sampling-only load: the averaged weights are the ones to sample from
                self.networks[self.sampler].load_state_dict(ema_state)
        for name, opt in self.optimizers.items():
            if name in meta.get("optimizers", {}):
                restore_optimizer(name, opt, tensors, meta["optimizers"][name])

    def sampler_tensors(self, half: bool = True) -> dict[str, torch.Tensor]:
        """Only the (averaged) sampling network and its ``sampling_extras``, for small bundled checkpoints."""
        tensors = prefixed(self.sampler, self.sampling_network().state_dict())
        for name in self.sampling_extras:
            tensors.update(prefixed(name, self.networks[name].state_dict()))
        return {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in tensors.items()}

    def adam(self, params, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas))

    def lrs(self) -> tuple[float, float]:
        """(generator lr, discriminator lr); TTUR (Heusel et al.) gives D a 4x faster clock."""
        lr = float(self.config["lr"])
        return (lr / 2.0, lr * 2.0) if self.config.get("ttur") else (lr, lr)

    @staticmethod
    def with_tigas_term(loss: torch.Tensor, tigas: Any, images: torch.Tensor, step: int, logs: dict) -> torch.Tensor:
        """``loss`` plus the TIGAS term on ``images`` ([-1, 1]); logs the term and score when computed."""
        term = tigas(to_unit(images), step=step)
        if tigas.last_score is not None:
            logs["tigas/term"], logs["tigas/score"] = term.item(), tigas.last_score
        return loss + term

    def optimise(self, name: str, loss: torch.Tensor, *clipped: nn.Module) -> float:
        """One update of optimizer ``name``: backpropagate ``loss``, clip the gradients of each of
        the ``clipped`` networks on its own (`clip`), step. Returns their summed norms before
        clipping, for the logs."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = sum((self.clip(module) for module in clipped), 0.0)
        optimizer.step()
        return norm

    def clip(self, module: nn.Module) -> float:
        """Clip gradients (TIGAS gradients through a frozen network can spike) and return the norm."""
        limit = float(self.config.get("grad_clip", 0.0))
        params = [p for p in module.parameters() if p.grad is not None]
        if limit <= 0 or not params:
            return 0.0
        return float(torch.nn.utils.clip_grad_norm_(params, limit))


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """The ``modules``' parameters out of the graphs built inside the block, so a generator loss
    computed through a critic there leaves no gradients in it when backpropagated, even after."""
    for module in modules:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for module in modules:
            module.requires_grad_(True)
