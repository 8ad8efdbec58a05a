"""Cross-modal attention fusion of the three branches' token sets, with adaptive branch weights."""
from __future__ import annotations

import torch
import torch.nn as nn

BRANCHES = ("perceptual", "spectral", "statistical")


class CrossModalBlock(nn.Module):
    """Each branch's tokens attend to the other branches' tokens (pre-norm, residual, MLP)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(context)
        query = query + self.attention(self.norm_q(query), kv, kv, need_weights=False)[0]
        return query + self.mlp(self.norm_mlp(query))


class CrossModalFusion(nn.Module):
    """Cross-attention between modalities, self-attention refinement, then adaptive weighting.

    Returns the fused vector [B, D], branch weights [B, 3] and the per-branch pooled vectors.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.modality = nn.Parameter(torch.zeros(len(BRANCHES), 1, dim))
        nn.init.trunc_normal_(self.modality, std=0.02)
        self.cross = nn.ModuleList(CrossModalBlock(dim, heads, dropout) for _ in BRANCHES)
        self.refine = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.weight_mlp = nn.Sequential(nn.Linear(len(BRANCHES) * dim, dim), nn.GELU(), nn.Linear(dim, len(BRANCHES)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        tokens = [t + self.modality[i] for i, t in enumerate(tokens)]
        attended = [
            block(t, torch.cat([o for j, o in enumerate(tokens) if j != i], dim=1))
            for i, (block, t) in enumerate(zip(self.cross, tokens))
        ]
        lengths = [t.shape[1] for t in attended]
        refined = self.refine(torch.cat(attended, dim=1)).split(lengths, dim=1)
        pooled = [t.mean(dim=1) for t in refined]
        weights = torch.softmax(self.weight_mlp(torch.cat(pooled, dim=1)), dim=1)
        fused = self.norm(sum(w.unsqueeze(1) * p for w, p in zip(weights.unbind(1), pooled)))
        return fused, weights, pooled
