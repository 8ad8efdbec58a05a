"""The one home of a result row: its columns (derived from the model's branches), the verdict a
score reads as, and the summary of a table of rows.

Every face shows these rows: `TIGAS.score_files` makes them, the score cache stores them, `tigas
score` prints and writes them, the app lists them and the dashboard groups them, so a new branch
or column is added here once.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from tigas_core.model import BRANCHES

WEIGHT_COLUMNS = tuple(f"w_{branch}" for branch in BRANCHES)
# The numbers of a row: the score, each branch's own score, each branch's fusion weight.
SCORE_COLUMNS = ("score", *BRANCHES, *WEIGHT_COLUMNS)
# "note": what a scored file's number should be read with (an animation scored on its first frame).
RESULT_COLUMNS = ["path", *SCORE_COLUMNS, "verdict", "error", "note"]
VERDICT_MARGIN = 0.1


def is_missing(value: Any) -> bool:
    """None or NaN: a file that was not scored."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def verdict(score: float | None, threshold: float = 0.5, margin: float = VERDICT_MARGIN) -> str:
    """Words for a score: within ``margin`` of the threshold the model is not sure either way."""
    if is_missing(score):
        return ""
    if score >= threshold + margin:
        return "likely real"
    if score <= threshold - margin:
        return "likely generated"
    return "uncertain"


def output_numbers(out: Mapping[str, Any], index: int) -> dict[str, float]:
    """The SCORE_COLUMNS of image ``index`` of a model output (`TIGASModel.forward`), as floats
    (read off the graph: a loss keeps its own tensors)."""
    def number(tensor: torch.Tensor) -> float:
        return float(tensor.detach())

    numbers = {"score": number(out["score"][index, 0])}
    numbers.update({branch: number(out["components"][branch][index, 0]) for branch in BRANCHES})
    numbers.update({w: number(out["branch_weights"][index, j]) for j, w in enumerate(WEIGHT_COLUMNS)})
    return numbers


def empty_row(path: str, error: str = "", note: str = "") -> dict[str, Any]:
    """A row with no numbers yet (NaN), for a file that failed with ``error`` or is still to be filled in."""
    return {"path": path, **dict.fromkeys(SCORE_COLUMNS, math.nan), "verdict": "", "error": error, "note": note}


def plain_numbers(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with NaN as None and numpy/torch numbers as floats: what JSON and Gradio take."""
    def plain(value: Any) -> Any:
        if is_missing(value):
            return None
        if isinstance(value, torch.Tensor):
            return float(value)
        return float(value) if hasattr(value, "dtype") else value

    return {key: plain(value) for key, value in row.items()}


def breakdown(row: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """A row's branch scores and fusion weights as the nested dicts the API and `Explanation` use."""
    return {
        "components": {branch: row[branch] for branch in BRANCHES},
        "branch_weights": {branch: row[w] for branch, w in zip(BRANCHES, WEIGHT_COLUMNS)},
    }


def with_verdicts(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A copy of a result table whose verdicts are read at ``threshold`` (scores are not recomputed)."""
    return table.assign(verdict=[verdict(score, threshold) for score in table["score"]])


def summarise(table: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Files, how many scored and failed, mean / median / std of the scores, and the share at or
    above ``threshold``: the closing line of `tigas score` and its JSON summary."""
    scores = table.loc[table["error"] == "", "score"]
    scored = len(scores)
    return {
        "files": int(len(table)),
        "scored": int(scored),
        "failed": int(len(table) - scored),
        "mean": float(scores.mean()) if scored else math.nan,
        "median": float(scores.median()) if scored else math.nan,
        "std": float(scores.std(ddof=0)) if scored else math.nan,
        "threshold": threshold,
        "share_real": float((scores >= threshold).mean()) if scored else math.nan,
    }
