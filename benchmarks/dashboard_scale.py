"""How the dashboard scales: first scoring of N images, then a cached re-open.

Prints one run's figures (no pass/fail):
  * first scoring through the persistent score cache: images/s and the scoring process's peak RSS;
  * re-open with a warm cache in a fresh process: seconds until the whole dashboard page has
    rendered once (Streamlit AppTest runs the real script: model load, indexing, cache read,
    summary, every chart), and the cache lookup alone.

Each phase runs in its own process so peak RSS and "fresh process" mean what they say.

    python benchmarks/dashboard_scale.py                 # 1,000 synthetic 128 px images, default model config
    python benchmarks/dashboard_scale.py --weights DIR   # with trained weights instead of a random init
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GENERATORS = ("real", "gan_a", "gan_b", "diffusion")


def make_images(root: Path, n: int, size: int) -> None:
    """n RGB PNGs spread over four 'generators', each with its own blur/noise/pattern statistics."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        generator = GENERATORS[i % len(GENERATORS)]
        base = rng.random((size // 8, size // 8, 3))
        image = Image.fromarray((base * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
        array = np.asarray(image, dtype=np.float32) / 255
        if generator == "real":
            array = array + rng.normal(0, 0.04, array.shape)
        elif generator == "gan_a":
            array = array + 0.08 * (((yy + xx) % 2) * 2 - 1)[..., None]
        elif generator == "diffusion":
            array = np.asarray(Image.fromarray((array * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2)), np.float32) / 255
        path = root / generator / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(path)


def load_tigas(weights: str | None):
    from tigas_core.api import TIGAS

    return TIGAS(weights, device="cpu")


def phase_score(root: Path, weights: str, cache_dir: Path, batch_size: int) -> dict:
    from tigas_core.io import iter_image_files
    from tigas_core.score_cache import ScoreCache

    tigas = load_tigas(weights)
    cache = ScoreCache(tigas, cache_dir)
    paths = list(iter_image_files(root))
    start = time.perf_counter()
    scored = cache.score(paths, batch_size=batch_size)
    seconds = time.perf_counter() - start
    return {"images": len(paths), "scored": scored.n_scored, "seconds": seconds, "images_per_s": len(paths) / seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "failed": int((scored.table["error"] != "").sum())}


def phase_reopen(root: Path, weights: str, cache_dir: Path, batch_size: int) -> dict:
    start = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    os.environ.update(TIGAS_DASHBOARD_ROOT=str(root), TIGAS_WEIGHTS=weights, TIGAS_CACHE_DIR=str(cache_dir),
                      TIGAS_BATCH_SIZE=str(batch_size))
    at = AppTest.from_file(str(REPO / "dashboards" / "dashboard.py"), default_timeout=600).run()
    render = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"dashboard failed: {at.exception}")
    newly = next(m.value for m in at.metric if m.label == "newly scored")

    from tigas_core.io import iter_image_files
    from tigas_core.score_cache import ScoreCache

    tigas = load_tigas(weights)
    lookup_start = time.perf_counter()
    ScoreCache(tigas, cache_dir).score(list(iter_image_files(root)))
    return {"first_render_s": render, "newly_scored": int(newly), "cache_lookup_s": time.perf_counter() - lookup_start,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_phase(name: str, args: argparse.Namespace, root: Path, weights: str, cache_dir: Path) -> dict:
    command = [sys.executable, __file__, "--phase", name, "--root", str(root), "--weights", weights,
               "--cache-dir", str(cache_dir), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of images")
    parser.add_argument("--size", type=int, default=128, help="side of the synthetic images in pixels")
    parser.add_argument("--weights", help="weights folder (default: a random-init model with the default config)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--phase", choices=["score", "reopen"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.phase:
        phase = phase_score if args.phase == "score" else phase_reopen
        print(json.dumps(phase(Path(args.root), args.weights, Path(args.cache_dir), args.batch_size)))
        return

    with tempfile.TemporaryDirectory(prefix="tigas-dash-bench-") as tmp:
        tmp = Path(tmp)
        weights = args.weights
        if not weights:
            from tigas_core.hub import save_pretrained
            from tigas_core.model import create_tigas_model

            weights = str(tmp / "weights")
            save_pretrained(create_tigas_model(), weights)
        start = time.perf_counter()
        make_images(tmp / "data", args.n, args.size)
        print(f"made {args.n} images of {args.size} px in {time.perf_counter() - start:.1f} s", flush=True)
        first = run_phase("score", args, tmp / "data", weights, tmp / "cache")
        print(f"first scoring: {first['images']} images in {first['seconds']:.1f} s = {first['images_per_s']:.1f} img/s, "
              f"peak RSS {first['peak_rss_mib']:.0f} MiB ({first['failed']} failed)", flush=True)
        reopen = run_phase("reopen", args, tmp / "data", weights, tmp / "cache")
        print(f"cached re-open (fresh process): first full render {reopen['first_render_s']:.1f} s "
              f"(newly scored {reopen['newly_scored']}), cache lookup alone {reopen['cache_lookup_s']:.2f} s, "
              f"peak RSS {reopen['peak_rss_mib']:.0f} MiB")
        print(f"ratio first scoring / re-open render: {first['seconds'] / reopen['first_render_s']:.1f}x")


if __name__ == "__main__":
    main()
