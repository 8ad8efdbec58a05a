"""Frequency-domain views of an image: log spectrum, radial profile, block DCT, artefact features.

Shared by the model's spectral branch, `TIGAS.explain`, the app and the dashboard, so the
spectrum a user looks at is exactly the one the model saw. All functions take batches and are
differentiable.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

_LUMA = (0.299, 0.587, 0.114)


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] -> [B,H,W] luma."""
    weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1)


# Cached constants are built outside inference mode: a tensor first made under
# torch.inference_mode() (e.g. while scoring files) could never again enter an autograd graph
# (explain's saliency, TIGAS as a loss).
@lru_cache(maxsize=16)
@torch.inference_mode(False)
def _hann_2d(height: int, width: int) -> torch.Tensor:
    return torch.outer(torch.hann_window(height, periodic=False), torch.hann_window(width, periodic=False))


def _power(spectrum: torch.Tensor) -> torch.Tensor:
    """|spectrum|^2 as a real tensor (differentiable)."""
    return spectrum.real.square() + spectrum.imag.square()


def power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Centred power spectrum |FFT|^2 of the Hann-windowed, mean-removed luma: [B,3,H,W] -> [B,H,W].

    The window suppresses the cross-shaped leakage from image borders, which otherwise dominates
    the high frequencies where up-sampling artefacts live.
    """
    gray = to_grayscale(images.float())
    gray = gray - gray.mean(dim=(-2, -1), keepdim=True)
    window = _hann_2d(*gray.shape[-2:]).to(gray.device)
    spectrum = torch.fft.fft2(gray * window, norm="ortho")
    # the real power is centred, not the complex spectrum: half the bytes to move
    return torch.fft.fftshift(_power(spectrum), dim=(-2, -1))


def centred_log_power(power: torch.Tensor) -> torch.Tensor:
    """log10 power with each image's mean level removed: [..., H, W] -> same shape.

    log10 (not log1p: powers are ~1e-9..1, where log1p is flat) keeps faint periodic peaks visible.
    """
    log_power = torch.log10(power + 1e-10)
    return log_power - log_power.mean(dim=(-2, -1), keepdim=True)


def log_spectrum(images: torch.Tensor) -> torch.Tensor:
    """`centred_log_power` of `power_spectrum`: the 2-D picture the model and users see. [B,3,H,W] -> [B,H,W]."""
    return centred_log_power(power_spectrum(images))


def _radius_index(fy: torch.Tensor, fx: torch.Tensor, height: int, width: int, n_bins: int) -> torch.Tensor:
    """Radius bin of each frequency of the grid fy x fx (integer frequencies of a height x width
    image), flattened: the radius normalised to 1 at Nyquist (corners clipped), in n_bins steps."""
    radius = torch.sqrt((fy / (height / 2))[:, None] ** 2 + (fx / (width / 2))[None, :] ** 2).clamp(max=1.0)
    return (radius * n_bins).long().clamp(max=n_bins - 1).flatten()


@lru_cache(maxsize=16)
@torch.inference_mode(False)
def _radius_bins(height: int, width: int, n_bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bin index per frequency of the centred full plane (`_radius_index`), bin counts, and for
    each bin the nearest non-empty bin (small images have fewer radii than bins)."""
    index = _radius_index(torch.arange(height) - height // 2, torch.arange(width) - width // 2, height, width, n_bins)
    counts = torch.bincount(index, minlength=n_bins)
    filled = counts.nonzero().flatten()
    nearest = filled[(torch.arange(n_bins)[:, None] - filled[None, :]).abs().argmin(dim=1)]
    return index, counts.clamp(min=1).float(), nearest


def _bin_means(values: torch.Tensor, index: torch.Tensor, counts: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """[N, F] values summed per bin ``index`` [F], divided by the bins' ``counts``, each empty bin
    taking its ``nearest`` filled one's -> [N, n_bins]."""
    device = values.device
    sums = torch.zeros(values.shape[0], len(counts), device=device, dtype=values.dtype).index_add(1, index.to(device), values)
    return (sums / counts.to(device))[:, nearest.to(device)]


def radial_profile(power: torch.Tensor, n_bins: int = 64) -> torch.Tensor:
    """Azimuthal average of log10 power per radius bin: [B,H,W] -> [B,n_bins], DC first."""
    return torch.log10(_bin_means(power.flatten(1), *_radius_bins(power.shape[-2], power.shape[-1], n_bins)) + 1e-10)


def radial_frequencies(n_bins: int) -> torch.Tensor:
    """Centre of each radial bin as a fraction of the Nyquist frequency."""
    return (torch.arange(n_bins) + 0.5) / n_bins


def natural_reference_profile(n_bins: int = 64, slope: float = 2.0) -> torch.Tensor:
    """The 1/f^slope power law of natural photographs as a log10 profile, zero at the middle bin.

    Used until a model has learnt its own reference from real training images.
    """
    profile = -slope * torch.log10(radial_frequencies(n_bins))
    return profile - profile[n_bins // 2]


def normalise_profile(profile: torch.Tensor) -> torch.Tensor:
    """Shift a log profile so its middle bin is zero: compares shapes, not overall contrast."""
    return profile - profile[..., profile.shape[-1] // 2 : profile.shape[-1] // 2 + 1]


@lru_cache(maxsize=8)
@torch.inference_mode(False)
def _dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix of size n x n."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix.float()


def block_dct_energy(images: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Mean log energy of each of the block x block DCT frequencies over all blocks (JPEG-style grid).

    [B,3,H,W] -> [B, block*block]. Generators leave tell-tale energy in particular DCT bands.
    """
    gray = to_grayscale(images.float())
    height, width = (gray.shape[-2] // block) * block, (gray.shape[-1] // block) * block
    gray = gray[:, :height, :width]
    blocks = gray.unfold(1, block, block).unfold(2, block, block)  # B, nh, nw, block, block
    dct = _dct_matrix(block).to(gray.device)
    with torch.autocast(gray.device.type, enabled=False):  # float32 also under AMP: 255^2 x a squared float16 overflows
        coefficients = dct @ blocks @ dct.T
    return torch.log1p(coefficients.square().mean(dim=(1, 2)) * 255.0**2).flatten(1)


ARTEFACT_FEATURES = 6  # how many cues `artefact_features` gives


def artefact_features(power: torch.Tensor, n_bins: int = 64) -> torch.Tensor:
    """Scalar cues of generator artefacts from a power spectrum [B,H,W] -> [B,ARTEFACT_FEATURES].

    high-frequency energy share (r > 0.5 and r > 0.75 of Nyquist), spectral slope of the radial
    profile, and periodic peaks: how far the strongest high-frequency bins stand above the radial
    mean (up-sampling and checkerboard artefacts make isolated peaks), plus the Nyquist-corner
    energy that transposed convolutions with stride 2 leave behind.
    """
    height, width = power.shape[-2:]
    index, _, _ = _radius_bins(height, width, n_bins)
    index = index.to(power.device)
    radius = index.float().view(height, width) / n_bins
    total = power.sum(dim=(-2, -1)) + 1e-10
    hf_half = (power * (radius > 0.5)).sum(dim=(-2, -1)) / total
    hf_quarter = (power * (radius > 0.75)).sum(dim=(-2, -1)) / total

    log_power = torch.log10(power + 1e-10)
    profile = radial_profile(power, n_bins)
    expected = profile[:, index].view(-1, height, width)
    excess = (log_power - expected) * (radius > 0.25)
    top = excess.flatten(1).topk(k=min(16, excess[0].numel()), dim=1).values
    peak_max, peak_mean = top[:, 0], top.mean(dim=1)

    freqs = torch.log10(radial_frequencies(n_bins).to(power.device))
    centred = freqs - freqs.mean()
    slope = ((profile - profile.mean(dim=1, keepdim=True)) * centred).sum(dim=1) / centred.square().sum()

    corners = torch.stack([log_power[:, 0, 0], log_power[:, 0, width // 2], log_power[:, height // 2, 0]], dim=1)
    nyquist = corners.mean(dim=1) - profile[:, -1]
    return torch.stack([torch.log10(hf_half + 1e-10), torch.log10(hf_quarter + 1e-10), slope, peak_max, peak_mean, nyquist], dim=1)


# Colour: what a camera's demosaicing and a generator's decoder leave in how the colour planes'
# fine detail relates, unseen in luma. Read by the score's read-out (`SpectralBranch.measure`).
# Computed on half planes (rfft2): a real image's spectrum is point-symmetric, so each
# frequency off the kx = 0 and Nyquist columns stands for itself and its mirror, and weighted
# twice the half plane's radial sums equal the full plane's at a third of the cost.
COLOUR_BANDS = 16  # radius bands of `channel_coherence` and `axis_shares`


def colour_spectra(images: torch.Tensor) -> torch.Tensor:
    """Half-plane FFT of each Hann-windowed, mean-removed colour plane: [B,3,H,W] -> complex
    [B,3,H,W//2+1]. Planes made contiguous first: on a channels-last batch (how `TIGAS` feeds
    the CPU) the FFT is several times slower."""
    planes = images.float().contiguous()
    planes = planes - planes.mean(dim=(-2, -1), keepdim=True)
    return torch.fft.rfft2(planes * _hann_2d(*planes.shape[-2:]).to(planes.device), norm="ortho")


def _signed_frequencies(n: int) -> torch.Tensor:
    """Integer frequency of each FFT output index along an axis of length n (numpy's fftfreq * n)."""
    k = torch.arange(n)
    return torch.where(k <= (n - 1) // 2, k, k - n)


@lru_cache(maxsize=16)
@torch.inference_mode(False)
def _half_plane_bins(height: int, width: int, n_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius bin (as `_radius_bins` gives it on the full plane) and weight (2 where the frequency
    stands for its mirror too) of each frequency of an rfft2 half plane."""
    fx = torch.arange(width // 2 + 1)
    mirrored = (fx > 0) & (fx * 2 != width)
    return _radius_index(_signed_frequencies(height), fx, height, width, n_bins), (1.0 + mirrored.float()).expand(height, -1).flatten()


def radial_means(half_plane: torch.Tensor, height: int, width: int, n_bins: int) -> torch.Tensor:
    """Mean per radius bin over the full plane of a point-symmetric quantity given on rfft2 half
    planes [..., H, W//2+1] (power, cross-power, masked power) -> [..., n_bins], DC first; an
    empty bin takes its nearest filled one's."""
    index, weights = _half_plane_bins(height, width, n_bins)
    _, counts, nearest = _radius_bins(height, width, n_bins)
    weighted = half_plane.flatten(-2).flatten(0, -2) * weights.to(half_plane.device)
    return _bin_means(weighted, index, counts, nearest).view(*half_plane.shape[:-2], n_bins)


def _log_profiles(spectra: torch.Tensor, height: int, width: int, n_bins: int) -> torch.Tensor:
    return torch.log10(radial_means(_power(spectra), height, width, n_bins) + 1e-10)


def _opponents(spectra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(blue, red) and (green, green) planes of `colour_spectra`, stacked: [B,2,H,W//2+1] each."""
    return spectra[:, [2, 0]], spectra[:, [1, 1]]


def rgb_profiles(spectra: torch.Tensor, height: int, width: int, n_bins: int = 64) -> torch.Tensor:
    """`normalise_profile`d log10 radial profile of each colour plane of `colour_spectra` -> [B, 3*n_bins]."""
    return normalise_profile(_log_profiles(spectra, height, width, n_bins)).flatten(1)


def chroma_profiles(spectra: torch.Tensor, height: int, width: int, n_bins: int = 64) -> torch.Tensor:
    """log10 radial power of blue - green and red - green, less green's: how much colour detail
    each frequency carries against the brightness detail -> [B, 2*n_bins]."""
    colour, green = _opponents(spectra)
    return (_log_profiles(colour - green, height, width, n_bins) - _log_profiles(spectra[:, 1:2], height, width, n_bins)).flatten(1)


def channel_coherence(spectra: torch.Tensor, height: int, width: int, n_bands: int = COLOUR_BANDS) -> torch.Tensor:
    """Per radius band, the normalised cross-power of blue with green and of red with green (1:
    the planes' detail moves together, as after demosaicing) -> [B, 2*n_bands]."""
    colour, green = _opponents(spectra)
    cross = radial_means((colour * green.conj()).real, height, width, n_bands)
    power = radial_means(_power(spectra), height, width, n_bands)
    return (cross / torch.sqrt(power[:, [2, 0]] * power[:, [1, 1]] + 1e-20)).flatten(1)


@lru_cache(maxsize=16)
@torch.inference_mode(False)
def _axis_masks(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """On an rfft2 half plane: frequencies within one bin of the two axes, and of the two diagonals."""
    fy = _signed_frequencies(height).abs()[:, None]
    fx = torch.arange(width // 2 + 1)[None, :]
    return ((fy <= 1) | (fx <= 1)).float(), ((fy - fx).abs() <= 1).float()


def axis_shares(spectra: torch.Tensor, height: int, width: int, n_bands: int = COLOUR_BANDS) -> torch.Tensor:
    """Per radius band, log10 of the share of the luma power on the axes and on the diagonals:
    grid-aligned up-sampling leaves peaks on them -> [B, 2*n_bands]. Luma's spectrum is the
    colour planes' weighted sum (windowing and mean removal are linear)."""
    power = _power((spectra * spectra.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1))
    total = radial_means(power, height, width, n_bands) + 1e-20
    return torch.cat([torch.log10(radial_means(power * mask.to(power.device), height, width, n_bands) / total + 1e-10)
                      for mask in _axis_masks(height, width)], dim=1)

