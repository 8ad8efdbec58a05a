"""Metrics: TIGASMetric here; evaluation, Frechet distance, KID and IS in their own modules."""
from tigas_core.metrics.tigas_metric import TIGASMetric

__all__ = ["TIGASMetric"]
