"""How far scores move when the trunk computes in bfloat16 (``TIGAS(precision="bf16")``) instead of fp32.

    python benchmarks/precision_agreement.py --data ../shared/data

Scores every high-resolution photo and every generated image of the data folder (CIFAR-10 left
out) with the same weights in both precisions, as stored and as a web copy (shorter side 256 px,
JPEG q75: `feature_cache.web_copy`), and prints per condition how much the scores differ (mean,
99th percentile, largest), how many verdicts change at the weights' threshold, and the AUROC of
photos against generated images in each precision; then how well the score's gradients w.r.t.
the pixels agree. These are training images: the AUROC shows that the two precisions rank alike,
not how well either generalises (leave_one_out.md does).
Writes benchmarks/results/precision_agreement.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from tigas_core import TIGAS
from tigas_core.config import atomic_write_text
from tigas_core.data.records import scan_folder
from tigas_core.io import load_image
from tigas_core.precision import has_fast_bf16
from tigas_core.training.feature_cache import EVAL_CONDITIONS

RESULTS = Path(__file__).parent / "results"


def score_both(scorers: dict[str, TIGAS], paths: list[Path], batch_size: int) -> dict[tuple[str, str], np.ndarray]:
    """(precision, condition) -> the scores of ``paths``, one view each, in path order."""
    scores: dict[tuple[str, str], list[float]] = {(p, c): [] for p in scorers for c in EVAL_CONDITIONS}
    for start in range(0, len(paths), batch_size):
        images = [load_image(path) for path in paths[start : start + batch_size]]
        for condition, degrade in EVAL_CONDITIONS.items():
            views = torch.cat([next(iter(scorers.values())).make_views(degrade(image)[None]) for image in images])
            with torch.inference_mode():
                for precision, scorer in scorers.items():
                    scores[precision, condition] += scorer.forward_views(views)["score"][:, 0].tolist()
    return {key: np.asarray(values) for key, values in scores.items()}


def gradient_agreement(scorers: dict[str, TIGAS], paths: list[Path]) -> np.ndarray:
    """Per image, the cosine similarity of the score's gradient w.r.t. its centre view's pixels
    with the trunk in bf16 to the same gradient in fp32 (what a generator trained on the score gets)."""
    exact, fast = scorers.values()
    views = torch.cat([exact.make_views(load_image(path)[None]) for path in paths])
    gradients = []
    for scorer in (exact, fast):
        pixels = views.clone().requires_grad_(True)
        scorer.forward_views(pixels)["score"].sum().backward()
        gradients.append(pixels.grad.flatten(1))
    return torch.nn.functional.cosine_similarity(*gradients, dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", help="TIGAS weights (default: the bundled ones)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    exact = TIGAS(args.weights, device="cpu")
    scorers = {"fp32": exact, "bf16": TIGAS(model=exact.model, device="cpu", precision="bf16")}
    records = [r for r in scan_folder(args.data) if r.source != "cifar10"]
    labels = np.array([r.label for r in records]) > 0.5  # True: a photo
    scores = score_both(scorers, [Path(r.path) for r in records], args.batch_size)

    lines = [f"# Scores with the trunk in bf16 against fp32 ({exact.weights_source.split(' ')[0]} weights)", "",
             f"`python benchmarks/precision_agreement.py --data {args.data}` on a CPU "
             f"{'with' if has_fast_bf16(torch.device('cpu')) else 'without'} native bfloat16, {args.threads} threads. "
             f"{labels.sum()} photos (CIFAR-10 left out) and {(~labels).sum()} generated images, one view each; "
             f"verdicts at the weights' threshold {exact.threshold:.2f}. Training images: the AUROC columns show that the "
             "precisions rank alike, not how well either generalises.", "",
             "| condition | mean abs. difference | 99th percentile | largest | verdicts changed | AUROC fp32 | AUROC bf16 |",
             "|---|---|---|---|---|---|---|"]
    for condition in EVAL_CONDITIONS:
        a, b = scores["fp32", condition], scores["bf16", condition]
        difference = np.abs(a - b)
        flipped = int(((a < exact.threshold) != (b < exact.threshold)).sum())
        lines.append(f"| {condition} | {difference.mean():.4f} | {np.percentile(difference, 99):.4f} | {difference.max():.4f} | "
                     f"{flipped} of {len(a)} | {roc_auc_score(labels, a):.4f} | {roc_auc_score(labels, b):.4f} |")
    sample = [Path(records[i].path) for i in np.random.default_rng(0).choice(len(records), 32, replace=False)]
    cosines = gradient_agreement(scorers, sample)
    lines += ["", f"Gradients of the score w.r.t. the pixels of 32 of these images (a fixed random draw), bf16 against fp32: "
                  f"cosine similarity median {np.median(cosines):.3f}, 10th percentile {np.percentile(cosines, 10):.3f}, "
                  f"lowest {cosines.min():.3f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(RESULTS / "precision_agreement.md", text)


if __name__ == "__main__":
    main()
