"""TIGAS as a loss, measured: the same DCGAN (same seed, same steps) trained without and with
the TIGAS term, then compared on its outputs.

    python benchmarks/zoo_demo.py --data ../shared/data/real/cifar10 --steps 600 --tigas-weight 0.1 \
        --work /tmp/zoo_demo --threads 1

Writes benchmarks/results/zoo_demo.md (numbers + this command) and zoo_demo_grid.png (left:
without TIGAS, right: with; same noise). Reported per run: mean TIGAS score of --n samples,
FD-TIGAS and KID (TIGAS features) against --n-real real images, all three measured with the
TIGAS that also served as the loss (they show that the generator moved towards what TIGAS calls
real), and, as an independent judge of the same files, the score of the real-image CIFAR-10
classifier of zoo_recognisability.py and the Fréchet distance to the real images in its features.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import torch
from zoo_recognisability import PINNED_CLASSIFIER, feature_stats, judge, load_classifier

from tigas_core.api import TIGAS
from tigas_core.commands.fid import compare_folders
from tigas_core.config import atomic_write_text
from tigas_core.generators import MODELS, load_for_sampling
from tigas_core.generators.common import ImageFolderTensors, resolve_checkpoint, save_grid
from tigas_core.generators.sampling import write_samples
from tigas_core.generators.train import LEGACY_PRECISION, ZooTrainOptions, train_zoo_model
from tigas_core.hub import bundled_weights_dir
from tigas_core.io import iter_image_files

RESULTS = Path(__file__).resolve().parent / "results"


def real_subset(data: Path, n: int, work: Path) -> Path:
    """Evenly spaced real images, linked (not copied) into one folder so `compare_folders` reads them."""
    folder = work / "real"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    files = list(iter_image_files(data))
    for i, path in enumerate(files[:: max(1, len(files) // n)][:n]):
        (folder / f"{i:05d}{path.suffix}").symlink_to(path.resolve())
    return folder


def start_from(init: Path, run: Path) -> int:
    """Copy a run's checkpoint into ``run`` (once) so training resumes from it; returns its step."""
    stem = resolve_checkpoint(init)
    run.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        target = (run / "checkpoint").with_suffix(suffix)
        if not target.exists():
            shutil.copyfile(stem.with_suffix(suffix), target)
    return int(json.loads(stem.with_suffix(".json").read_text())["progress"]["step"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/zoo_demo"))
    parser.add_argument("--steps", type=int, default=600, help="generator steps per run (after --init's)")
    parser.add_argument("--init", type=Path, default=None,
                        help="start both runs from this DCGAN run folder (same weights, optimizer and RNG state)")
    parser.add_argument("--tigas-weight", type=float, nargs="+", default=[0.1], help="one run per weight")
    parser.add_argument("--tigas-every", type=int, default=1)
    parser.add_argument("--tigas-checkpoint", default=None, help="TIGAS weights (default: bundled)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=1000, help="generated images per run")
    parser.add_argument("--n-real", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--classifier", type=Path, default=PINNED_CLASSIFIER,
                        help="weights of the CIFAR-10 classifier of zoo_recognisability.py (default: pinned; trained if missing)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python benchmarks/zoo_demo.py " + " ".join(sys.argv[1:])

    tigas = TIGAS(args.tigas_checkpoint, device="cpu")
    weights_dir = Path(args.tigas_checkpoint) if args.tigas_checkpoint else bundled_weights_dir()
    weights_sha = hashlib.sha256((weights_dir / "model.safetensors").read_bytes()).hexdigest()
    real = real_subset(args.data, args.n_real, args.work)
    classifier = load_classifier(ImageFolderTensors(args.data, 32), args.classifier)
    real_stats = feature_stats(classifier, ImageFolderTensors(real, 32).images.float() / 255.0)
    init_meta = json.loads(resolve_checkpoint(args.init).with_suffix(".json").read_text()) if args.init else {}
    init_seconds = init_meta["progress"]["seconds"] if args.init else 0.0
    # Continue with the starting run's own settings, whichever defaults it was trained with.
    init_config = MODELS["dcgan"].saved_config(init_meta) if args.init else {}
    overrides = {k: v for k, v in init_config.items() if k not in ("img_size", "n_classes")}
    precision = init_meta.get("precision", LEGACY_PRECISION) if args.init else "auto"
    rows, grids = [], []
    runs = [("without TIGAS", 0.0)] + [(f"with TIGAS (weight {w}, every {args.tigas_every} step(s))", w) for w in args.tigas_weight]
    for label, weight in runs:
        run = args.work / (f"tigas_{weight}" if weight else "plain")
        first_step = start_from(args.init, run) if args.init else 0
        start = time.monotonic()
        summary = train_zoo_model(ZooTrainOptions(
            model="dcgan", data=args.data, out=run, minutes=600, max_steps=first_step + args.steps, seed=args.seed,
            overrides=overrides, tigas_weight=weight, tigas_weights=args.tigas_checkpoint, tigas_every=args.tigas_every,
            precision=precision))
        train_s = time.monotonic() - start
        model = load_for_sampling(str(run))
        fakes = run / "fake"
        write_samples(model, fakes, args.n, seed=1000)
        scores = tigas.compute_directory(fakes, progress=False)["score"]
        metrics = compare_folders(real, fakes, "tigas", tigas, kid_subset_size=1000, kid_subsets=50)
        grids.append(model.sample(32, seed=7))
        # the files TIGAS scored
        independent = judge(classifier, ImageFolderTensors(fakes, 32).images.float() / 255.0, real_stats=real_stats)
        rows.append({"run": label, "steps": summary["step"] - first_step, "train_s": round(train_s, 1),
                     "mean_tigas": float(scores.mean()), "fd_tigas": metrics["fd"],
                     "kid": metrics["kid_mean"], "kid_std": metrics["kid_std"], **independent})
        print(json.dumps(rows[-1]), flush=True)

    # Side by side: 8 rows x 4 columns per run, white gaps between runs.
    gap = torch.ones(8, 1, 3, 32, 32)
    blocks = [part for g in grids for part in (g.view(8, 4, 3, 32, 32), gap)][:-1]
    save_grid(torch.cat(blocks, dim=1).flatten(0, 1), RESULTS / "zoo_demo_grid.png", nrow=5 * len(grids) - 1)

    real_score = float(tigas.compute_directory(real, progress=False)["score"].mean())
    lines = [
        "# DCGAN with and without the TIGAS loss term",
        "",
        (f"Both runs start from the same DCGAN checkpoint ({args.init.name}, step {first_step}: weights, optimizer and "
         "RNG state) and continue " if args.init else "Both runs start from scratch; ") +
        f"with the same seed ({args.seed}) for the same {args.steps} generator steps, batch {summary['batch_size']}, CIFAR-10 32 px reals "
        f"({len(list(iter_image_files(args.data)))} images); {args.n} samples per run scored against "
        f"{args.n_real} real images. TIGAS weights: {tigas.weights_source} (model.safetensors sha256 "
        f"{weights_sha[:12]}…). CPU, {args.threads} thread(s), {platform.processor() or platform.machine()}.",
        *([
            "",
            f"The starting run was made with `tigas zoo train --model dcgan --data {args.data} --out {args.init}` "
            f"and had trained for {init_seconds / 60:.1f} minutes (step {first_step}).",
        ] if args.init else []),
        "",
        "| run | steps | wall time incl. data loading (s) | mean TIGAS score of samples | FD-TIGAS to real | KID (TIGAS features) "
        "| classifier score (independent) | confident | FD-classifier to real (independent) |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {r['run']} | {r['steps']} | {r['train_s']} | {r['mean_tigas']:.3f} | {r['fd_tigas']:.4f} | "
          f"{r['kid']:.4f} ± {r['kid_std']:.4f} | {r['classifier_score']:.2f} | {r['confident']:.3f} | {r['fd_classifier']:.2f} |"
          for r in rows),
        "",
        f"Mean TIGAS score of the {args.n_real} real images themselves: {real_score:.3f}.",
        "",
        "The TIGAS score, FD-TIGAS and KID use the TIGAS network that was also the loss, so they measure how "
        "far the generator moved towards what TIGAS calls real. The last three columns are an independent "
        "judge (no Inception weights are available offline for an FID): the CIFAR-10 classifier of "
        "`benchmarks/zoo_recognisability.py`, trained on real images only; its score is the Inception Score "
        "with that classifier (1 = nothing recognised; held-out real images: see zoo_recognisability.md), "
        "'confident' the share of samples whose top class has p >= 0.5, FD-classifier the Fréchet distance "
        "to the same real images in that classifier's pooled features (an FID with a CIFAR-10 network).",
        "",
        "![same noise; columns of 4 per run, in the table's order (left: without TIGAS)](zoo_demo_grid.png)",
        "",
        "Reproduce:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    atomic_write_text(RESULTS / "zoo_demo.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
