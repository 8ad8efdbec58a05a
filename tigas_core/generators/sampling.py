"""Write generator samples as PNG files: the labelled fakes (``fake/<generator>/``) that the
TIGAS trainer, `tigas fid`, the dashboard and the demo set read."""
from __future__ import annotations

from pathlib import Path

import torch

from tigas_core.config import atomic_write_bytes
from tigas_core.generators import ZooModel, load_for_sampling
from tigas_core.generators.common import png_bytes


def write_samples(model: ZooModel, out: Path, n: int, seed: int = 0, batch_size: int = 250, label: int | None = None,
                  prefix: str | None = None, progress: bool = False, truncation: float = 1.0, prompt: str | None = None) -> list[Path]:
    """``n`` PNGs ``<prefix>_<index>.png``; batch ``i`` uses seed ``seed + i`` so the same call
    writes the same files. A conditional model cycles through its classes unless ``label``, a
    text-conditioned one draws every image for ``prompt`` when given; ``truncation`` < 1 trades
    variety for fidelity (see `ZooModel.latent`)."""
    model.check_sampling(None if label is None else torch.tensor([label]), truncation)  # before any file or folder
    draw = prompted_sampler(model, prompt, label)
    prefix = prefix or model.name
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"generate {model.name}", unit="batch")
    written: list[Path] = []
    for b, first in enumerate(starts):
        count = min(batch_size, n - first)
        for i, image in enumerate(draw(first, count, seed + b, truncation)):
            path = out / f"{prefix}_{first + i:05d}.png"
            atomic_write_bytes(path, png_bytes(image))
            written.append(path)
    return written


def prompted_sampler(model: ZooModel, prompt: str | None, label: int | None):
    """``draw(first, count, seed, truncation)`` -> images: for ``prompt`` (checked against the
    model's vocabulary here, before anything is written), else for ``label`` or every class in turn."""
    if prompt is not None:
        if not hasattr(model, "sample_prompts"):
            raise ValueError(f"a prompt applies to text-conditioned models (text2image), not {model.name!r}")
        if label is not None:
            raise ValueError("give a prompt or a label, not both")
        model.vocabulary.encode([prompt])
        return lambda first, count, seed, truncation: model.sample_prompts([prompt] * count, seed, truncation)

    def by_label(first: int, count: int, seed: int, truncation: float) -> torch.Tensor:
        labels = None
        if model.conditional:
            labels = torch.full((count,), label) if label is not None else torch.arange(first, first + count) % model.config["n_classes"]
        return model.sample(count, labels=labels, seed=seed, truncation=truncation)

    return by_label


def generate_images(checkpoint: str | Path, out: Path, n: int, seed: int = 0, batch_size: int = 250,
                    label: int | None = None, expected_model: str | None = None, prefix: str | None = None,
                    progress: bool = False, sample_steps: int | None = None, device: str = "auto",
                    use_ema: bool = True, truncation: float = 1.0, guidance: float | None = None,
                    prompt: str | None = None) -> list[Path]:
    """Load a checkpoint's sampling network and write ``n`` PNGs (see `write_samples`).
    ``sample_steps`` overrides a diffusion model's number of DDIM steps (speed vs. quality),
    ``guidance`` a class-conditional diffusion model's classifier-free guidance scale.
    The same seed writes the same images on every device (the noise is drawn on the CPU)."""
    from tigas_core.api import resolve_device

    model = load_for_sampling(str(checkpoint), expected_model, use_ema).to(resolve_device(device))
    if sample_steps is not None:
        if "sample_steps" not in model.config:
            raise ValueError(f"{checkpoint}: --sample-steps applies to diffusion models, not {model.name!r}")
        model.config["sample_steps"] = int(sample_steps)
    if guidance is not None:
        if "guidance" not in model.config or not model.conditional:
            raise ValueError(f"{checkpoint}: --guidance applies to class-conditional diffusion models, not this {model.name!r}")
        model.config["guidance"] = float(guidance)
    return write_samples(model, out, n, seed, batch_size, label, prefix, progress, truncation, prompt)
