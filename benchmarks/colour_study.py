"""Does colour augmentation of the training views help now? Measured out of fold, not taken.

The read-out reads colour (the trunk's statistics and the colour spectra), so a greyscale copy of
a generated image reads far more real (benchmarks/results/view_stability.md). Here the training
views get the `strong-colour` treatment on top of the shipped `native` level (saturation scaled by
0.4-1.6, one view in seven turned grey; the upload views as before), and both read-outs (shipped
recipe, read-out alone) score every held-out image as it is and as a greyscale copy.

    python benchmarks/colour_study.py measure   # runs/colour_study/{train,grey_eval}.safetensors
    python benchmarks/colour_study.py loo       # needs runs/score_up3 (train_score.py measure); four fold runs
    python benchmarks/colour_study.py report    # benchmarks/results/colour_study.md

Each read-out is calibrated and thresholded on its own out-of-fold scores of the images as they
are, as the shipped weights are; its greyscale column uses that calibration and threshold, which
is what a user scoring a greyscale copy gets. (The table was measured with each web copy made
before turning it grey; `feature_cache.greyscale_evaluation_views`, which the bundled weights'
greyscale calibration is fitted on, turns the image grey first, as a greyscale upload is made.)
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from readout_study import named_generator_auroc  # noqa: E402
from train_score import select_records  # noqa: E402

from tigas_core.config import TIGASConfig, atomic_write_text  # noqa: E402
from tigas_core.data import get_level  # noqa: E402
from tigas_core.training import leave_one_out as loo  # noqa: E402
from tigas_core.training.feature_cache import (  # noqa: E402
    EVAL_CONDITIONS,
    FeatureCache,
    condition_of,
    greyscale_evaluation_views,
    measure_records,
    training_views,
)

WORK, BASELINE = Path("runs/colour_study"), Path("runs/score_up3")
RESULTS = Path(__file__).parent / "results" / "colour_study.md"
TRAININGS = {"shipped (native)": BASELINE / "train.safetensors", "+ colour (strong-colour)": WORK / "train.safetensors"}
EVALUATIONS = {"as is": BASELINE / "eval.safetensors", "greyscale": WORK / "grey_eval.safetensors"}


def measure(args: argparse.Namespace) -> None:
    """The two caches, on the records and seed of `train_score.py measure`'s defaults."""
    config = TIGASConfig()
    model = loo.fresh_model(config, 0)
    records = select_records(["../shared/data", "runs/zoo_fakes"], 600, 120, 0)
    colour = dataclasses.replace(get_level("native"), saturation=get_level("strong-colour").saturation,
                                 greyscale_p=get_level("strong-colour").greyscale_p)
    for path, make in ((TRAININGS["+ colour (strong-colour)"], training_views(config.img_size, colour, 3, 1, 3)),
                       (EVALUATIONS["greyscale"], greyscale_evaluation_views(config.img_size))):
        if path.exists():
            print(f"{path} exists, kept")
            continue
        tick = time.time()
        cache = measure_records(model, records, make, seed=0, batch_size=32)
        path.parent.mkdir(parents=True, exist_ok=True)
        cache.save(path)
        print(f"{path}: {len(cache)} views in {time.time() - tick:.0f} s")


def logits_path(training: str, evaluation: str) -> Path:
    return WORK / f"{list(TRAININGS).index(training)}_{list(EVALUATIONS).index(evaluation)}_logits.npy"


def run_loo(args: argparse.Namespace) -> None:
    """Each read-out's out-of-fold logits of each evaluation cache (shipped recipe, read-out alone)."""
    tests = {evaluation: FeatureCache.load(path) for evaluation, path in EVALUATIONS.items()}
    for training, train_path in TRAININGS.items():
        train = FeatureCache.load(train_path)
        for evaluation, test in tests.items():
            tick = time.time()
            logits = loo.out_of_fold_logits(TIGASConfig(), train, test, loo.Recipe(steps=0))
            np.save(logits_path(training, evaluation), logits)
            print(f"{training}, {evaluation}: {time.time() - tick:.0f} s", flush=True)


def row(training: str, evaluation: str, test: FeatureCache, calibration: tuple[float, float, float]) -> str:
    """One table row: AUROC as `leave_one_out.report` computes it, and at the read-out's own
    calibration and threshold the web copies' verdicts and mean scores."""
    logits = np.load(logits_path(training, evaluation))
    temperature, bias, threshold = calibration
    result = loo.report(test, logits, temperature, bias, threshold)
    clean, web = result["conditions"]["clean"], result["conditions"]["web"]
    score = 1 / (1 + np.exp(-(logits - bias) / temperature))
    photo, on_web = test.labels.numpy() > 0.5, condition_of(np.arange(len(test))) == list(EVAL_CONDITIONS).index("web")
    generated, photos = score[on_web & ~photo], score[on_web & photo]
    return (f"| {training} | {evaluation} | {clean['mean_generator_auroc']:.3f} / {web['mean_generator_auroc']:.3f} | "
            f"{named_generator_auroc(web):.3f} | {web['auroc_all']:.3f} | {threshold:.2f} | "
            f"{np.mean(generated < threshold - 0.1):.0%} / {np.mean(generated >= threshold + 0.1):.0%} | "
            f"{np.mean(photos < threshold - 0.1):.1%} | {generated.mean():.2f} / {photos.mean():.2f} |")


def report(args: argparse.Namespace) -> None:
    lines = ["# Colour augmentation of the training views, and greyscale copies, out of fold (read-out alone)", "",
             "`python benchmarks/colour_study.py measure && python benchmarks/colour_study.py loo && "
             "python benchmarks/colour_study.py report`", "",
             "Mean generator AUROC clean / web, the 22 named generators at web, all generated against all photos at web; "
             "then, at each read-out's own calibration and threshold (fitted on the images as they are), the web copies of "
             "generated images read 'likely generated' / 'likely real', photos read 'likely generated', and the mean score "
             "of generated images / photos at web.", "",
             "| training views | scored images | AUROC clean / web | named web | all vs all web | threshold "
             "| generated: likely generated / likely real | photos: likely generated | mean score generated / photos |",
             "|---|---|---|---|---|---|---|---|---|"]
    tests = {evaluation: FeatureCache.load(path) for evaluation, path in EVALUATIONS.items()}
    for training in TRAININGS:
        logits = np.load(logits_path(training, "as is"))
        temperature, bias = loo.calibrate(tests["as is"], logits)
        calibration = (temperature, bias, loo.choose_threshold(tests["as is"], logits, temperature, bias))
        lines += [row(training, evaluation, test, calibration) for evaluation, test in tests.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(RESULTS, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("measure", "loo", "report"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"measure": measure, "loo": run_loo, "report": report}[args.step](args)


if __name__ == "__main__":
    main()
