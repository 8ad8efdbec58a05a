"""torch.hub entry points: ``torch.hub.load("OWNER/REPO", "tigas")`` without installing TIGAS.

torch.hub puts the downloaded repository on ``sys.path``, so ``tigas_core`` and the bundled weights
in ``assets/`` come with it; the packages below must already be installed.
"""
dependencies = ["torch", "torchvision", "numpy", "PIL", "safetensors", "huggingface_hub", "pandas", "scipy",
                "torchmetrics", "plotly", "yaml"]


def tigas(checkpoint_path: str | None = None, auto_download: bool = False, device: str = "auto", **kwargs):
    """A ready ``TIGAS`` scorer: the bundled weights, a weights folder/file/Hub repo id, or the pinned
    Hub weights with ``auto_download=True``; keyword arguments as for ``tigas_core.TIGAS``."""
    from tigas_core import TIGAS

    return TIGAS(checkpoint_path=checkpoint_path, auto_download=auto_download, device=device, **kwargs)


def tigas_loss(weight: float = 0.1, **kwargs):
    """``TIGASLoss`` over the bundled weights (frozen; gradients reach the images)."""
    from tigas_core import TIGASLoss

    return TIGASLoss(weight=weight, **kwargs)
