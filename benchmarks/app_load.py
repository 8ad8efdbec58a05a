"""Load test of the Gradio app over real HTTP with gradio_client.

N concurrent sessions (default 16) each send M requests (default 50), alternating /score and
/explain on images of mixed sizes, and the script prints p50/p95 latency per endpoint (and per
image size), the error count and throughput. It first measures one client alone on 512 px images,
which is the latency a single visitor sees when the Space is idle.

    python benchmarks/app_load.py                        # bundled weights, app started here
    python benchmarks/app_load.py --weights random       # default-size model, random init
    python benchmarks/app_load.py --weights DIR --concurrency 4
    python benchmarks/app_load.py --url http://127.0.0.1:7860/   # an app that is already running
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tigas_core.local_server import LocalServer, free_port

APP_FILE = Path(__file__).resolve().parents[1] / "app" / "app.py"
ENDPOINTS = ("/score", "/explain")


def make_images(folder: Path, sizes: list[int]) -> dict[int, Path]:
    """One photo-like test image per size (smooth gradients plus noise), saved as JPEG."""
    rng = np.random.default_rng(0)
    images = {}
    for size in sizes:
        yy, xx = np.mgrid[0:size, 0:size] / size
        base = np.stack([np.sin(6 * xx) * 0.5 + 0.5, yy, (xx + yy) / 2], axis=-1) * 255
        pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        images[size] = folder / f"bench_{size}.jpg"
        Image.fromarray(pixels).save(images[size], quality=90)
    return images


def start_app(weights: str | None, concurrency: int, workdir: Path) -> tuple[LocalServer, str]:
    """Launch app/app.py on a free port and wait until it answers."""
    if weights == "random":
        from tigas_core.hub import save_pretrained
        from tigas_core.model import create_tigas_model

        weights = str(workdir / "random_weights")
        save_pretrained(create_tigas_model(), weights)
    port = free_port()
    command = [sys.executable, str(APP_FILE), "--port", str(port), "--no-examples", "--concurrency", str(concurrency)]
    command += ["--weights", weights] if weights else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    url = f"http://127.0.0.1:{port}/"
    return LocalServer(command, url + "config", workdir / "app.log", env).start(), url


def run_session(url: str, images: dict[int, Path], requests: int, offset: int, maps: bool = False) -> list[tuple[str, int, float, bool]]:
    """One client: alternating endpoints, cycling through image sizes. Returns (endpoint, size, s, ok)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    sizes = sorted(images)
    results = []
    for i in range(requests):
        endpoint = ENDPOINTS[(i + offset) % 2]
        size = sizes[(i // 2 + offset) % len(sizes)]
        start = time.perf_counter()
        try:
            extra = {"maps": True} if maps and endpoint == "/explain" else {}
            response = client.predict(handle_file(str(images[size])), api_name=endpoint, **extra)
            ok = isinstance(response, dict) and 0.0 <= response["score"] <= 1.0
        except Exception as exc:  # counted, and the first few are shown
            ok = False
            print(f"error {endpoint} {size}px: {exc}", file=sys.stderr)
        results.append((endpoint, size, time.perf_counter() - start, ok))
    return results


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(title: str, results: list[tuple[str, int, float, bool]], wall: float) -> None:
    print(f"\n== {title}: {len(results)} requests in {wall:.1f} s ({len(results) / wall:.2f} req/s)")
    print(f"errors: {sum(not ok for *_, ok in results)}")
    for endpoint in ENDPOINTS:
        times = [t * 1000 for e, _, t, ok in results if e == endpoint and ok]
        if times:
            print(f"{endpoint:9s} n={len(times):4d}  p50 {percentile(times, 50):8.1f} ms  p95 {percentile(times, 95):8.1f} ms"
                  f"  mean {statistics.fmean(times):8.1f} ms")
        for size in sorted({s for e, s, *_ in results if e == endpoint}):
            sized = [t * 1000 for e, s, t, ok in results if e == endpoint and s == size and ok]
            if sized:
                print(f"  {size:5d} px  n={len(sized):4d}  p50 {percentile(sized, 50):8.1f} ms  p95 {percentile(sized, 95):8.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="benchmark an app that is already running instead of starting one")
    parser.add_argument("--weights", help="weights folder, or 'random' for a default-size model; default: bundled")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--requests", type=int, default=50, help="requests per session")
    parser.add_argument("--sizes", default="128,256,512,1024", help="image sizes (px, square)")
    parser.add_argument("--concurrency", type=int, default=2, help="app queue concurrency (when started here)")
    parser.add_argument("--single", type=int, default=20, help="requests per endpoint for the one-client 512 px pass")
    parser.add_argument("--maps", action="store_true", help="/explain also returns the 2-D spectrum and saliency maps")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tigas_bench_") as tmp:
        workdir = Path(tmp)
        images = make_images(workdir, sorted({int(s) for s in args.sizes.split(",")} | {512}))
        server = None
        if args.url:
            url = args.url
        else:
            server, url = start_app(args.weights, args.concurrency, workdir)
        try:
            print(f"app: {url}  sessions {args.sessions} x {args.requests} requests, sizes {args.sizes}, "
                  f"explain maps {args.maps}")
            run_session(url, {512: images[512]}, 2, 0, args.maps)  # warm-up, not counted
            start = time.perf_counter()
            single = run_session(url, {512: images[512]}, 2 * args.single, 0, args.maps)
            report("one client, 512 px (idle server)", single, time.perf_counter() - start)
            load_images = {s: images[s] for s in (int(s) for s in args.sizes.split(","))}
            start = time.perf_counter()
            with ThreadPoolExecutor(args.sessions) as pool:
                futures = [pool.submit(run_session, url, load_images, args.requests, i, args.maps)
                           for i in range(args.sessions)]
                results = [row for future in futures for row in future.result()]
            report(f"{args.sessions} concurrent sessions, mixed sizes", results, time.perf_counter() - start)
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
