"""Deterministic, leak-free train/val/test splits stratified by generator.

Groups (source images) are shuffled per generator with a seed and dealt out whole, so tiles of
one grid never appear in two splits; held-out generators go to the test split entirely, giving
an honest unseen-generator measurement. A file whose bytes are also in an earlier split is moved
there, since a copy of a training image is a training image: ../shared/data holds three
stable-diffusion-2 tiles twice, listed under two source paths, and before this rule all three
copies landed in the test split beside their twins in training.
"""
from __future__ import annotations

import logging
import os
import random
from collections import defaultdict
from collections.abc import Iterable

from tigas_core.data.records import ImageRecord
from tigas_core.io import file_digest

log = logging.getLogger("tigas.data")

SPLITS = ("train", "val", "test")


def split_records(
    records: list[ImageRecord],
    *,
    seed: int = 0,
    train_split: float = 0.8,
    val_split: float = 0.1,
    holdout_generators: Iterable[str] = (),
) -> dict[str, list[ImageRecord]]:
    """Return {"train","val","test"} record lists.

    Per generator (and class), groups are shuffled with ``random.Random(f"{seed}:{generator}")``
    (deterministic across runs and machines) and cut at ``train_split`` and
    ``train_split + val_split``. A generator with too few groups keeps at least one group for
    training; with two groups the second goes to test. Generators in ``holdout_generators``
    appear only in test.
    """
    if not 0 < train_split <= 1 or not 0 <= val_split <= 1 - train_split:
        raise ValueError(f"need 0 < train_split <= 1 and 0 <= val_split <= 1 - train_split, got {train_split}, {val_split}")
    holdout = set(holdout_generators)
    unknown = holdout - {r.generator for r in records}
    if unknown:
        raise ValueError(f"held-out generator(s) not in the data: {sorted(unknown)}")

    by_stratum: dict[tuple[str, int], dict[str, list[ImageRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_stratum[(record.generator, record.label)][record.group].append(record)

    out: dict[str, list[ImageRecord]] = {name: [] for name in SPLITS}
    for (generator, label), groups in sorted(by_stratum.items()):
        keys = sorted(groups)
        if generator in holdout:
            assignment = {key: "test" for key in keys}
        else:
            random.Random(f"{seed}:{generator}:{label}").shuffle(keys)
            assignment = _deal(keys, train_split, val_split)
        for key in keys:
            out[assignment[key]].extend(groups[key])
    _join_copies_to_their_first_split(out, holdout)
    for name in SPLITS:
        out[name].sort(key=lambda r: r.path)
    return out


def content_digests(paths: Iterable[str]) -> dict[str, str]:
    """`file_digest` of each file whose size another file shares: only those can be copies, so a
    dataset of distinct large images costs a stat per file, not a read."""
    by_size: dict[int, list[str]] = defaultdict(list)
    for path in paths:
        try:
            by_size[os.path.getsize(path)].append(path)
        except OSError:  # unreadable now: the loader reports it when it gets there
            continue
    return {path: file_digest(path) for same_size in by_size.values() if len(same_size) > 1 for path in same_size}


def _join_copies_to_their_first_split(out: dict[str, list[ImageRecord]], holdout: set[str]) -> None:
    """Move each file whose bytes are already in an earlier split (train, then val, then test)
    into that split; a held-out generator's copy of a seen image is dropped instead, since it can
    be neither trained on nor called unseen."""
    digests = content_digests(r.path for name in SPLITS for r in out[name])
    first_split: dict[str, str] = {}
    for name in SPLITS:
        for record in out[name]:
            if record.path in digests:
                first_split.setdefault(digests[record.path], name)
    moved = dropped = 0
    for name in SPLITS[1:]:
        kept = []
        for record in out[name]:
            target = first_split.get(digests.get(record.path, ""), name)
            if target == name:
                kept.append(record)
            elif record.generator in holdout:
                dropped += 1
            else:
                out[target].append(record)
                moved += 1
        out[name] = kept
    if moved or dropped:
        log.info("splits: %d file(s) moved to the split that holds a byte-identical copy, %d held-out copies dropped",
                 moved, dropped)


def _deal(keys: list[str], train_split: float, val_split: float) -> dict[str, str]:
    n = len(keys)
    n_train = max(1, round(n * train_split))
    n_val = round(n * val_split)
    if n == 2 and train_split < 1:
        n_train = 1
    elif n >= 3 and train_split < 1:
        n_train = min(n_train, n - 1 - (1 if val_split > 0 else 0))
        n_val = max(n_val, 1) if val_split > 0 else 0
    n_val = min(n_val, n - n_train)
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val)
    return dict(zip(keys, names))


def describe_split(splits: dict[str, list[ImageRecord]]) -> str:
    """One line per generator with its image counts per split, for logs and model cards."""
    generators = sorted({r.generator for records in splits.values() for r in records})
    lines = [f"{'generator':<24}" + "".join(f"{name:>8}" for name in SPLITS)]
    for generator in generators:
        counts = [sum(r.generator == generator for r in splits[name]) for name in SPLITS]
        lines.append(f"{generator:<24}" + "".join(f"{c:>8}" for c in counts))
    return "\n".join(lines)
