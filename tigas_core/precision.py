"""Which arithmetic a run computes in: ``fp32``, ``bf16`` or ``auto`` (bf16 where it is native).

One home for the zoo trainer's ``--precision`` and the scorer's: the same names and the same
hardware check everywhere."""
from __future__ import annotations

import logging

import torch

PRECISIONS = ("auto", "fp32", "bf16")

logger = logging.getLogger("tigas")


def has_fast_bf16(device: torch.device) -> bool:
    """Whether bfloat16 convolutions are native on ``device``: a GPU that supports them, or a CPU
    with AMX or AVX512-BF16 (elsewhere oneDNN emulates them, slower than float32)."""
    if device.type == "cuda":  # Ampere and later; is_bf16_supported() also counts emulation, slower than fp32
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's capability checks
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` -> ``bf16`` where it is native (see `has_fast_bf16`), else ``fp32``. An explicit
    ``bf16`` on a GPU without it (or another device) is refused; on such a CPU it runs emulated,
    with a warning."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if has_fast_bf16(device) else "fp32"
    if precision == "bf16" and not has_fast_bf16(device):
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"{device}: precision bf16 runs on cpu or cuda; use precision fp32")
        if device.type == "cuda":
            raise ValueError(f"{device}: this GPU has no native bfloat16 (it came with Ampere); use precision fp32")
        logger.warning("precision bf16: %s has no native bfloat16 arithmetic; it is emulated, slower than fp32", device)
    return precision
