"""The TIGAS network: perceptual, spectral and statistical branches fused by cross-modal attention."""
from tigas_core.model.fusion import BRANCHES
from tigas_core.model.tigas import TIGASModel, create_tigas_model

__all__ = ["BRANCHES", "TIGASModel", "create_tigas_model"]
