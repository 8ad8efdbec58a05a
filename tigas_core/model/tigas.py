"""TIGASModel: three analysis branches, cross-modal fusion, and the score / classification heads."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from tigas_core import spectral
from tigas_core.config import TIGASConfig
from tigas_core.io import MIN_SIDE, is_greyscale
from tigas_core.model.fusion import BRANCHES, CrossModalFusion
from tigas_core.model.perceptual_branch import PerceptualBranch, tap_statistics, tap_statistics_size
from tigas_core.model.spectral_branch import SpectralBranch
from tigas_core.model.statistical_branch import StatisticalBranch
from tigas_core.weights_files import (
    BUNDLED_WEIGHTS,
    CONFIG_NAME,
    WEIGHTS_NAME,
    WeightsNotFoundError,
    bundled_weights_dir,
    locate,
    write_weights,
)


def readout_input(trunk_statistics: torch.Tensor, spectral_measured: dict[str, torch.Tensor],
                  spectral_names: tuple[str, ...]) -> torch.Tensor:
    """What the read-out reads, [B, features]: the trunk's texture statistics (`tap_statistics`), then
    the spectral measurements ``spectral_names`` flattened, side by side. The radial profiles,
    block-DCT energy and colour coherence see single-pixel traces the ImageNet trunk's statistics
    miss; read by the same regression they carry over to unseen generators
    (benchmarks/results/readout_study.md)."""
    return torch.cat([trunk_statistics.float(), *[spectral_measured[name].float().flatten(1) for name in spectral_names]], dim=1)


class TIGASModel(nn.Module):
    """Maps images [B,3,H,W] in [0,1] (any H,W >= 32) to a realism score in [0,1] and its parts.

    See `forward` for the output dictionary; DESIGN.md lists it as a stable interface.
    """

    def __init__(self, config: TIGASConfig | None = None):
        super().__init__()
        self.config = config or TIGASConfig()
        c = self.config
        self.perceptual = PerceptualBranch(c.backbone, c.backbone_taps, c.adapter_channels, c.feature_dim, c.train_trunk)
        self.spectral = SpectralBranch(c.feature_dim, c.radial_bins, c.dct_block, c.spectrum_size)
        self.statistical = StatisticalBranch(c.feature_dim, c.num_prototypes)
        self.fusion = CrossModalFusion(c.feature_dim, c.num_heads, c.dropout)
        self.component_heads = nn.ModuleDict({name: nn.Linear(c.feature_dim, 1) for name in BRANCHES})
        self.regression_head = nn.Sequential(
            nn.Linear(c.feature_dim, c.feature_dim // 2), nn.GELU(), nn.Dropout(c.dropout),
            nn.Linear(c.feature_dim // 2, c.feature_dim // 4), nn.GELU(), nn.Dropout(c.dropout),
            nn.Linear(c.feature_dim // 4, 1),
        )
        # A linear read-out of the trunk's texture statistics and spectral measurements, to which
        # the fused path adds its correction. It starts at zero (a fresh model is the fused path
        # alone); the bundled recipe fits it in closed form first (`leave_one_out.fit_readout`),
        # the pixel trainer with the rest.
        statistics = (tap_statistics_size(self.perceptual.trunk.feature_info.channels(), c.readout_correlations)
                      + sum(self.spectral.vector_size(name) for name in c.readout_spectral))
        self.readout = nn.Sequential(nn.BatchNorm1d(statistics, affine=False), nn.Linear(statistics, 1))
        nn.init.zeros_(self.readout[1].weight)
        nn.init.zeros_(self.readout[1].bias)
        self.classification_head = nn.Linear(c.feature_dim, 2)
        # Mean normalised radial power profile of real images; shown beside an image's own profile.
        self.register_buffer("reference_profile", spectral.natural_reference_profile(c.radial_bins))

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike = BUNDLED_WEIGHTS, revision: str | None = None) -> TIGASModel:
        """The network ``weights`` names: ``"assets"`` (the bundled weights), a weights folder
        (config.json + model.safetensors), a .safetensors or legacy .pt file, or a Hub repo
        ``"owner/name[@revision]"`` (through the Hugging Face cache). The config travels with the
        weights, so the network is rebuilt exactly; weights that do not fit it raise."""
        path = bundled_weights_dir() if os.fspath(weights) == BUNDLED_WEIGHTS else locate(weights, revision)
        if path.suffix in (".pt", ".pth", ".ckpt"):
            return cls._from_legacy(path)
        folder = path if path.is_dir() else path.parent
        config_path, weights_path = folder / CONFIG_NAME, (folder / WEIGHTS_NAME if path.is_dir() else path)
        for needed in (config_path, weights_path):
            if not needed.is_file():
                raise WeightsNotFoundError(
                    f"{needed}: missing (a TIGAS weights folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
        from safetensors.torch import load_file

        model = cls(TIGASConfig.load(config_path))
        model._load_checked(load_file(str(weights_path)), weights_path)
        return model

    @classmethod
    def _from_legacy(cls, path: Path) -> TIGASModel:
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: file not found")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("model_state_dict", checkpoint.get("state_dict", checkpoint))
        config = checkpoint.get("config")
        model = cls(TIGASConfig.from_dict(config) if isinstance(config, dict) else TIGASConfig())
        model._load_checked(state, path)
        return model

    def _load_checked(self, state: dict, origin: Path) -> None:
        """load_state_dict that names the file and what does not fit."""
        try:
            result = self.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # same names, other shapes: weights of a differently configured model
            detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc).splitlines()[0])
            raise WeightsNotFoundError(
                f"{origin}: weights do not match the model described by its config ({detail})"
                + ("; a .pt file without a 'config' entry is read with the default config" if origin.suffix != ".safetensors" else "")
            ) from exc
        if result.missing_keys or result.unexpected_keys:
            raise WeightsNotFoundError(
                f"{origin}: weights do not match the model described by its config "
                f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})")

    def save_pretrained(self, directory: str | os.PathLike, model_card: str | None = None, half: bool = False) -> Path:
        """config.json + model.safetensors (+ a model card) in ``directory``, each written atomically:
        what `from_pretrained` and the Hub read. ``half`` stores float16 (scores move < 1e-3)."""
        return write_weights(self.state_dict(), self.config, directory, model_card=model_card, half=half)

    def train(self, mode: bool = True) -> TIGASModel:
        super().train(mode)
        if not any(p.requires_grad for p in self.readout.parameters()):
            self.readout.eval()  # a fitted, frozen read-out keeps its feature statistics
        return self

    def measure(self, x: torch.Tensor) -> dict:
        """Everything the learnt layers read of x [B,3,H,W] in [0,1]: the perceptual trunk's maps,
        the spectral and the statistical measurements (differentiable), and which images are
        greyscale (calibrated apart). With a frozen trunk none of it changes in training, so a
        training cache stores it and skips the costly part."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape [B,3,H,W], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE} px, got {tuple(x.shape[-2:])}")
        return {"trunk": self.perceptual.trunk_features(x), "spectral": self.spectral.measure(x),
                "statistical": self.statistical.measure(x), "greyscale": is_greyscale(x.detach())}

    def forward(self, x: torch.Tensor | None = None, measured: dict | None = None) -> dict:
        """x: [B,3,H,W] float in [0,1], or ``measured``: `measure(x)` computed before.

        Returns score [B,1] (calibrated), logit [B,1] (calibrated, score = sigmoid(logit)),
        raw_logit [B,1] (before calibration, what training optimises: the read-out's logit plus the
        fused path's correction), readout_logit [B,1] (the read-out's part), logits [B,2] (auxiliary
        real/fake head, index 1 = real), components {branch: [B,1]}, branch_weights [B,3],
        features {perceptual, spectral, statistical, fused: [B,D]}, spectral_profile [B,bins],
        spectrum_grid [B,S,S] (the pooled centred log10 spectrum the spectral branch read).
        """
        measured = self.measure(x) if measured is None else measured
        spectral_measured = measured["spectral"]
        tokens = [self.perceptual(measured["trunk"]), self.spectral(spectral_measured),
                  self.statistical(measured["statistical"])]
        branch_features = {name: t.mean(dim=1) for name, t in zip(BRANCHES, tokens)}
        fused, weights, _ = self.fusion(tokens)

        statistics = tap_statistics(measured["trunk"], self.config.readout_correlations)
        readout = self.readout(readout_input(statistics, spectral_measured, self.config.readout_spectral).to(fused.dtype))
        raw_logit = readout + self.regression_head(fused)
        # What each branch says on its own; the perceptual branch's view includes the trunk's read-out.
        component_logits = {name: self.component_heads[name](f) for name, f in branch_features.items()}
        component_logits["perceptual"] = component_logits["perceptual"] + readout
        temperature, bias = self.calibration(measured.get("greyscale"), raw_logit)
        logit = (raw_logit - bias) / temperature
        return {
            "score": torch.sigmoid(logit),
            "logit": logit,
            "raw_logit": raw_logit,
            "readout_logit": readout,
            "logits": self.classification_head(fused),
            "components": {name: torch.sigmoid(v) for name, v in component_logits.items()},
            "component_logits": component_logits,
            "branch_weights": weights,
            "features": {**branch_features, "fused": fused},
            "spectral_profile": spectral_measured["profile"],
            "spectrum_grid": spectral_measured["grid"][:, 0],
        }

    def calibration(self, greyscale: torch.Tensor | None, raw_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(temperature, bias) [B,1] of each image: the greyscale ones' own (`config.greyscale_calibration`)
        where the weights have one, else the config's. ``greyscale``: [B] bool, or None (measurements
        cached without it: all in colour)."""
        config = self.config
        temperature = torch.full_like(raw_logit, config.calibration_temperature)
        bias = torch.full_like(raw_logit, config.calibration_bias)
        if greyscale is None or config.greyscale_calibration is None:
            return temperature, bias
        grey = greyscale.view(-1, 1)
        grey_temperature, grey_bias = config.greyscale_calibration
        return temperature.masked_fill(grey, grey_temperature), bias.masked_fill(grey, grey_bias)


def create_tigas_model(config: TIGASConfig | None = None, **overrides) -> TIGASModel:
    """A freshly initialised TIGASModel; keyword arguments override fields of the (default) config."""
    config = config or TIGASConfig()
    if overrides:
        config = TIGASConfig.from_dict({**config.to_dict(), **overrides})
    return TIGASModel(config)
