"""Which views should a score read? Each `tigas_core.io.model_views` mode measured out of fold: each
fold's read-out (the shipped recipe's, alone, as in `readout_study.py`) scores the held-out images'
evaluation views (`clean` and `web`, as `train_score.py loo`) through that mode, logits averaged over
the mode's views.

    python benchmarks/view_study.py --work runs/score_up3      # -> benchmarks/results/view_study.md

``--work``: the cache of `train_score.py measure` (its training views fit the read-outs; its
records give the evaluation images, whose views are made again here for every mode but `single`, whose
views it holds). Each mode's out-of-fold logits are saved beside the cache (``view_study_MODE_logits.npy``)
and its own threshold (`leave_one_out.choose_threshold` on its scores) is reported beside the single view's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from readout_study import Variant, named_generator_auroc, out_of_fold, pooled, side_by_side, versus_every_photo  # noqa: E402
from train_score import RESULTS  # noqa: E402

from tigas_core.config import TIGASConfig, atomic_write_text  # noqa: E402
from tigas_core.io import model_views  # noqa: E402
from tigas_core.training import leave_one_out as loo  # noqa: E402
from tigas_core.training.feature_cache import EVAL_CONDITIONS, FeatureCache, measure_records  # noqa: E402

MODES = {"single": 1, "mirror": 2, "grid": 4}  # mode -> views per image


def shipped_variant(work: str) -> Variant:
    """The shipped read-out (`leave_one_out.Recipe`'s defaults) as a `readout_study` variant."""
    recipe = loo.Recipe()
    return Variant("shipped", gram_taps=TIGASConfig().readout_correlations, c=recipe.readout_c, work=work,
                   correlation_weight=recipe.correlation_weight, measurement_weight=recipe.spectral_weight,
                   measurements=tuple(f"spectral.{name}" for name in TIGASConfig().readout_spectral),
                   generator_directions=recipe.generator_directions)


def mode_features(test: FeatureCache, mode: str, variant: Variant, chunk: int = 128) -> np.ndarray:
    """[evaluation rows, views, features]: the read-out's statistics of every view ``mode`` makes of
    each evaluation row's image (rows in the evaluation cache's order), measured ``chunk`` records
    at a time (the trunk maps of every view would not fit in memory)."""
    model = loo.fresh_model(TIGASConfig(), 0).eval()

    def make(image: torch.Tensor, rng) -> list[torch.Tensor]:
        return [view for copy in EVAL_CONDITIONS.values() for view in model_views(copy(image)[None], model.config.img_size, mode)[0]]

    blocks = []
    for start in range(0, len(test.records), chunk):
        cache = measure_records(model, test.records[start : start + chunk], make, progress=False)
        blocks.append(pooled(cache, variant.statistics, variant.gram_taps, variant.cross_taps, variant.measurements, variant.taps)[0])
        print(f"{mode}: {min(start + chunk, len(test.records))} of {len(test.records)} images", flush=True)
    features = np.concatenate(blocks)
    return features.reshape(len(test), MODES[mode], features.shape[-1])


def worst_false_alarms(result: dict, condition: str) -> str:
    sources = {name: row for name, row in result["conditions"][condition]["sources"].items() if row["n"] >= loo.MIN_SOURCE_IMAGES}
    name = max(sources, key=lambda s: sources[s]["false_alarms"])
    return f"{100 * sources[name]['false_alarms']:.1f} % ({name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/score_up3")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variant = shipped_variant(args.work)
    (train, train_x, column_weights), (test, cached_x, _) = side_by_side(variant, "train"), side_by_side(variant, "eval")
    rows, single_view = [], None
    for mode in MODES:
        # the cache's evaluation views are `single`'s (`evaluation_views` makes them with `preprocess`, as
        # model_views does; made again they differ by 0.0000)
        features = cached_x[:, None] if mode == "single" else mode_features(test, mode, variant)
        logits = out_of_fold(variant, train, test, train_x, features, column_weights)
        if single_view is None:  # the threshold and calibration every mode is judged at: the single view's, as shipped
            temperature, bias = loo.calibrate(test, logits)
            single_view = temperature, bias, loo.choose_threshold(test, logits, temperature, bias)
        result = loo.report(test, logits, *single_view)
        web = result["conditions"]["web"]
        np.save(Path(args.work) / f"view_study_{mode}_logits.npy", logits)
        own = loo.choose_threshold(test, logits, *single_view[:2])
        rows.append(f"| {mode} | {MODES[mode]} | {result['conditions']['clean']['mean_generator_auroc']:.3f} | "
                    f"{web['mean_generator_auroc']:.3f} | {web['auroc_all']:.3f} | {versus_every_photo(test, logits, 'web'):.3f} | "
                    f"{named_generator_auroc(web):.3f} | {worst_false_alarms(result, 'clean')} | {worst_false_alarms(result, 'web')} | "
                    f"{own} |")
        print(rows[-1], flush=True)
    lines = ["# View study: each scoring mode out of fold (the shipped read-out alone)", "",
             f"`python benchmarks/view_study.py --work {args.work}`", "",
             f"Mean generator AUROC clean and web, all generated against all photos at web, each generator against every "
             f"photo of either size at web, the 22 named generators at web; photos read 'likely generated' at the single "
             f"view's threshold ({single_view[2]}), worst source of {loo.MIN_SOURCE_IMAGES}+ images (or the smaller ones pooled); "
             f"the threshold `leave_one_out.choose_threshold` gives the mode's own scores.", "",
             "| views | per image | clean | web | all vs all web | vs every photo web | named web "
             "| worst source clean | worst source web | own threshold |",
             "|---|---|---|---|---|---|---|---|---|---|", *rows]
    atomic_write_text(RESULTS / "view_study.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
