"""Paint a content image in the style of another (Gatys et al.; ImageNet Lite0 features) and
score the result with TIGAS.

    tigas style-transfer photo.jpg painting.jpg --out styled.png --steps 200 --style-weight 10
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tigas_core.commands import add_scorer_arguments, load_scorer, positive_int, prepare_output


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("content", help="image whose layout is kept (file or http(s) URL)")
    parser.add_argument("style", help="image whose colours and textures are taken (file or http(s) URL)")
    parser.add_argument("--out", required=True, type=Path, help="result image (.png, .jpg, ...)")
    parser.add_argument("--steps", type=positive_int, default=200, help="optimisation steps")
    parser.add_argument("--style-weight", type=non_negative, default=10.0, help="weight of the style loss (content loss weighs 1)")
    parser.add_argument("--tv-weight", type=non_negative, default=1.0, help="weight of the total-variation smoothness term")
    parser.add_argument("--lr", type=non_negative, default=0.01, help="Adam learning rate")
    parser.add_argument("--size", type=positive_int, default=256, help="shorter side of the result in px (both images are resized to it)")
    add_scorer_arguments(parser, options=("weights", "device", "views", "threshold", "threads"))


def run(args: argparse.Namespace) -> int:
    if args.size < 32:
        raise ValueError(f"--size must be at least 32 px, got {args.size}")
    prepare_output(args.out, "--out")
    from io import BytesIO

    from PIL import Image
    from tqdm.auto import tqdm

    from tigas_core.api import resolve_device
    from tigas_core.config import atomic_write_bytes
    from tigas_core.io import to_uint8_image
    from tigas_core.metrics.perceptual import LiteFeatures
    from tigas_core.results import verdict
    from tigas_core.style_transfer import TAPS, transfer_and_score

    device = resolve_device(args.device)
    scorer = load_scorer(args, device=device)
    bar = tqdm(total=args.steps, desc="style transfer", unit="step")

    def on_step(step: int, content: float, style: float) -> None:
        bar.set_postfix(content=f"{content:.3f}", style=f"{style:.3f}", refresh=False)
        bar.update()

    try:
        result = transfer_and_score(args.content, args.style, args.size, args.steps, args.style_weight, scorer=scorer,
                                    on_step=on_step, tv_weight=args.tv_weight, lr=args.lr,
                                    features=LiteFeatures(taps=TAPS).to(device))
    finally:
        bar.close()
    buffer = BytesIO()
    image = Image.fromarray(to_uint8_image(result.image))
    image.save(buffer, format=Image.registered_extensions().get(args.out.suffix.lower(), "PNG"))
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"wrote {args.out} ({image.width}x{image.height}); TIGAS score {result.score:.4f} ({verdict(result.score, scorer.threshold)}); "
          f"content loss {result.content_loss[0]:.3f} -> {result.content_loss[-1]:.3f}, "
          f"style loss {result.style_loss[0]:.3f} -> {result.style_loss[-1]:.3f}")
    return 0
