"""Spectral branch: FFT log-spectrum CNN, radial power profile, block-DCT energy, artefact cues."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tigas_core import spectral
from tigas_core.model.encoders import measurement_encoder


class SpectralBranch(nn.Module):
    """Tokens from the frequency domain.

    A 4x4 grid of tokens from a small CNN over the log power spectrum (where periodic up-sampling
    peaks show as off-centre dots), plus one token each for the radial profile, the block-DCT
    energy and the scalar artefact features.
    """

    grid = 4

    def __init__(self, feature_dim: int, radial_bins: int = 64, dct_block: int = 8, spectrum_size: int = 64):
        super().__init__()
        self.radial_bins, self.dct_block, self.spectrum_size = radial_bins, dct_block, spectrum_size
        self.spectrum_cnn = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.SiLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.SiLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.SiLU(inplace=True),
        )
        self.spectrum_proj = nn.Linear(64, feature_dim)
        self.position = nn.Parameter(torch.zeros(1, self.grid * self.grid, feature_dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.profile_mlp = measurement_encoder(radial_bins, feature_dim)
        self.dct_mlp = measurement_encoder(dct_block * dct_block, feature_dim)
        self.artefact_mlp = measurement_encoder(spectral.ARTEFACT_FEATURES, feature_dim)

    def vector_size(self, name: str) -> int:
        """Length of `measure`'s vector ``name`` (the grid is a map, not a vector)."""
        sizes = {"profile": self.radial_bins, "dct": self.dct_block * self.dct_block, "artefacts": spectral.ARTEFACT_FEATURES,
                 "rgb_profiles": 3 * self.radial_bins, "chroma_profiles": 2 * self.radial_bins,
                 "coherence": 2 * spectral.COLOUR_BANDS, "axis_shares": 2 * spectral.COLOUR_BANDS}
        if name not in sizes:
            raise ValueError(f"the spectral branch has no measurement vector {name!r}; it has {', '.join(sizes)}")
        return sizes[name]

    def measure(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the branch reads of [B,3,H,W], before anything learnt: the centred log10 power
        spectrum pooled to [B,1,S,S], the normalised radial profile, block-DCT energy and the
        scalar artefact cues; and for the score's read-out only, the colour planes' profiles,
        their coherence and the luma power's share on axes and diagonals (`spectral`'s colour
        section). Differentiable; a training cache stores it."""
        power = spectral.power_spectrum(x)
        colour, size = spectral.colour_spectra(x), x.shape[-2:]
        return {
            "grid": F.adaptive_avg_pool2d(spectral.centred_log_power(power).unsqueeze(1), self.spectrum_size),
            "profile": spectral.normalise_profile(spectral.radial_profile(power, self.radial_bins)),
            "dct": spectral.block_dct_energy(x, self.dct_block),
            "artefacts": spectral.artefact_features(power, self.radial_bins),
            "rgb_profiles": spectral.rgb_profiles(colour, *size, self.radial_bins),
            "chroma_profiles": spectral.chroma_profiles(colour, *size, self.radial_bins),
            "coherence": spectral.channel_coherence(colour, *size),
            "axis_shares": spectral.axis_shares(colour, *size),
        }

    def forward(self, measured: dict[str, torch.Tensor]) -> torch.Tensor:
        """`measure`'s output -> tokens [B, 19, D]."""
        maps = F.adaptive_avg_pool2d(self.spectrum_cnn(measured["grid"]), self.grid).flatten(2).transpose(1, 2)
        map_tokens = self.spectrum_proj(maps) + self.position
        vector_tokens = torch.stack(
            [self.profile_mlp(measured["profile"]), self.dct_mlp(measured["dct"]), self.artefact_mlp(measured["artefacts"])], dim=1
        )
        return torch.cat([vector_tokens, map_tokens], dim=1)
