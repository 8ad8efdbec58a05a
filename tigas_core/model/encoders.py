"""Shared small layers of the branches."""
from __future__ import annotations

import torch.nn as nn


def measurement_encoder(in_features: int, feature_dim: int) -> nn.Sequential:
    """Raw measurements -> a feature_dim token. BatchNorm first: the cues live on very different
    scales (log powers, ratios, slopes, moments, entropies)."""
    return nn.Sequential(nn.BatchNorm1d(in_features), nn.Linear(in_features, feature_dim), nn.SiLU(inplace=True),
                         nn.Linear(feature_dim, feature_dim))
