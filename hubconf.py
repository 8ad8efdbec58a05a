"""torch.hub entry points: ``torch.hub.load("OWNER/REPO", "tigas")`` without installing TIGAS.

torch.hub puts the downloaded repository on ``sys.path``, so ``tigas_core`` and the bundled weights
in ``assets/`` come with it; the packages below must already be installed.
"""
dependencies = ["torch", "torchvision", "numpy", "PIL", "safetensors", "huggingface_hub", "pandas", "scipy",
                "torchmetrics", "plotly", "yaml"]


def tigas(weights: str | None = None, **options):
    """A ready ``TIGAS`` scorer: ``weights`` None or "assets" (bundled), a weights folder or file, or a
    Hub repo "owner/name@revision"; other keyword arguments as for ``tigas_core.TIGAS``."""
    from tigas_core import TIGAS

    return TIGAS(weights, **options)


def tigas_loss(weight: float = 0.1, **kwargs):
    """``TIGASLoss`` over the bundled weights (frozen; gradients reach the images)."""
    from tigas_core import TIGASLoss

    return TIGASLoss(weight=weight, **kwargs)
