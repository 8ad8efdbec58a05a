"""Evaluate weights per generator (AUROC, AP, accuracy, ECE; JPEG/resize/blur robustness) with baselines."""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from tigas_core.commands import add_scorer_arguments, load_scorer

log = logging.getLogger("tigas.evaluate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", required=True, metavar="DIR_OR_CSV", help="data folder or CSV index (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("eval_report.json"), help="report JSON; the Markdown table goes beside it (.md)")
    parser.add_argument("--holdout-generators", default="", help="generators that were held out of training (comma-separated)")
    parser.add_argument("--seed", type=int, default=0, help="split seed used for training (default: %(default)s)")
    parser.add_argument("--train-split", type=float, default=0.8)
    parser.add_argument("--val-split", type=float, default=0.1)
    parser.add_argument("--max-per-generator", type=int, default=0,
                        help="score at most this many test images per generator and class (seeded; 0 = all)")
    add_scorer_arguments(parser, batch_size=32)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tigas_core.data import describe_split, load_records, split_records
    from tigas_core.hub import overlap_with_training
    from tigas_core.metrics.evaluation import evaluate, render_markdown, write_report

    holdout = [g for g in args.holdout_generators.split(",") if g]
    splits = split_records(load_records(args.data), seed=args.seed, train_split=args.train_split,
                           val_split=args.val_split, holdout_generators=holdout)
    log.info("split\n%s", describe_split(splits))
    seen = overlap_with_training(args.weights, [r.path for r in splits["test"]])
    if seen:
        print(f"tigas evaluate: {len(seen)} of {len(splits['test'])} test images were used to train these weights "
              f"(split.json beside them), e.g. {seen[0]}; evaluate on images they never saw", file=sys.stderr)
        return 2
    tigas = load_scorer(args)
    report = evaluate(tigas, splits, holdout_generators=holdout, batch_size=args.batch_size, seed=args.seed,
                      max_per_generator=args.max_per_generator, progress=not args.no_progress)
    command = "tigas " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if Path(sys.argv[0]).name == "tigas" else None
    markdown = render_markdown(report, command)
    write_report(report, args.out, markdown)
    print(markdown)
    log.info("report written to %s and %s", args.out, args.out.with_suffix(".md"))
    return 0
