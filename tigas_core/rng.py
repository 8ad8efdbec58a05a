"""Random-number state for checkpoints, so that a resumed run continues its random draws instead
of replaying them: the CPU generator and, once CUDA is in use, every CUDA device's (on a GPU the
augmentation, noise and dropout draws come from those, and ``torch.manual_seed`` at the start of
each invocation would otherwise restart them)."""
from __future__ import annotations

from collections.abc import Mapping

import torch


def rng_state() -> dict[str, torch.Tensor]:
    """``{"torch": CPU state, "cuda.0": device 0's state, ...}`` (uint8 tensors)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # a CPU run on a GPU machine starts no CUDA context
        state.update({f"cuda.{index}": s for index, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def set_rng_state(state: Mapping[str, torch.Tensor]) -> None:
    """Restore what `rng_state` returned (CUDA states only where those devices exist)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            if f"cuda.{index}" in state:
                torch.cuda.set_rng_state(state[f"cuda.{index}"], index)
