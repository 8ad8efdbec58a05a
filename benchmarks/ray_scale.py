"""Folder scoring on Ray against `compute_directory`, on one node, from one run.

    python benchmarks/ray_scale.py [--folder DIR] [--n 2000] [--cpus 2] [--batch-size 16] [--weights DIR] [--out FILE.md]

Scores the same N images (synthetic 512x384 JPEGs from throughput.py, or the first N of --folder)
with the bundled weights (or --weights) three ways: `TIGAS.compute_directory` in this process (torch on --cpus
threads), and `tigas_core.distributed.score_dataset` on a local Ray of --cpus CPUs with 1 and
with 2 scoring actors (one thread each). Ray's times are whole jobs (actors starting, reading,
writing the Parquet file) on a Ray already running, as on a cluster. Prints a markdown table
(img/s, Ray's overhead against compute_directory, the 1 -> 2 actor speed-up, the largest score
difference) and writes it to --out.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tigas_core.api import TIGAS
from tigas_core.distributed import score_dataset
from tigas_core.io import iter_image_files

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import synthetic_jpegs  # noqa: E402  (the same synthetic images as the throughput benchmark)

RESULTS = Path(__file__).resolve().parent / "results" / "ray_scale_cpu.md"
FULL_SIZE = 2000


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="images to score (default: N synthetic JPEGs)")
    parser.add_argument("--n", type=int, default=FULL_SIZE)
    parser.add_argument("--cpus", type=int, default=2, help="torch threads locally, CPUs of the local Ray")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weights", help="weights folder (default: the bundled weights)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        if args.folder:
            for i, path in enumerate(list(iter_image_files(args.folder))[: args.n]):
                (images / f"{i:05d}{path.suffix.lower()}").symlink_to(path.resolve())
        else:
            synthetic_jpegs(images, args.n)
        n = len(list(images.iterdir()))
        tigas = TIGAS(args.weights, device="cpu")
        torch.set_num_threads(args.cpus)
        local_s, expected = timed(lambda: tigas.compute_directory(images, batch_size=args.batch_size, progress=False))
        torch.set_num_threads(1)  # the driver only collects rows; the actors do the work
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="warning")
        try:
            runs = {workers: timed(lambda w=workers: score_dataset(images, Path(tmp) / f"ray{w}.parquet", tigas,
                                                                   workers=w, batch_size=args.batch_size))
                    for workers in (1, 2)}
        finally:
            ray.shutdown()

    load = os.getloadavg()[1]  # over the last 5 minutes: other work on the machine shows in every rate
    merged = {w: expected.merge(result.table, on="path", suffixes=("", "_ray")) for w, (_, result) in runs.items()}
    difference = max(float(np.nanmax(np.abs(m["score_ray"] - m["score"]))) for m in merged.values())
    table = report(n, args, local_s, {w: seconds for w, (seconds, _) in runs.items()}, difference, load)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


def report(n: int, args: argparse.Namespace, local_s: float, ray_s: dict[int, float], difference: float, load: float) -> str:
    source = f"the first {n} images of {args.folder}" if args.folder else f"{n} synthetic 512x384 JPEGs"
    short = "" if n >= FULL_SIZE else f" (fewer than the planned {FULL_SIZE}, to fit the time available)"
    rows = [("`compute_directory`, this process", f"{args.cpus} torch threads", n / local_s, "1.00x")]
    rows += [(f"Ray Data, one node ({args.cpus} CPUs)", f"{w} actor{'s' if w > 1 else ''}", n / s, f"{local_s / s:.2f}x")
             for w, s in ray_s.items()]
    lines = [
        "# Folder scoring on Ray against compute_directory",
        "",
        f"`python benchmarks/ray_scale.py --n {args.n}{f' --folder {args.folder}' if args.folder else ''}` on {source}{short}, "
        f"{f'weights {args.weights}' if args.weights else 'bundled weights'}, batch {args.batch_size}, "
        f"{platform.machine()} with {os.cpu_count()} cores "
        f"(shared with other work: load average {load:.1f} at the end); Ray jobs timed whole, on a running Ray.",
        "",
        "| engine | workers | img/s | speed vs compute_directory |",
        "|---|---|---|---|",
        *(f"| {name} | {workers} | {rate:.1f} | {ratio} |" for name, workers, rate, ratio in rows),
        "",
        f"Ray's overhead on one node (compute_directory's img/s over Ray's with 2 actors): **{ray_s[2] / local_s:.2f}x** (aim: <= 1.3x).",
        f"1 -> 2 actors: **{ray_s[1] / ray_s[2]:.2f}x** the img/s.",
        f"Largest score difference between the engines: {difference:.1e}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
