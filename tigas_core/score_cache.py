"""Persistent cache of TIGAS results per image, keyed by file content and model identity.

The dashboard reopens thousands of images many times while only a few change between visits.
Scoring is the expensive part, so every result (score, branch scores, fused features, radial
profile, a small 2-D log10 power spectrum) is stored once per (model, file content) in SQLite and only
new or changed files are scored again. Keys are content hashes, not paths: renaming or copying a
file costs nothing, and editing it in place (same path) is noticed. A second table remembers
(path, size, mtime, inode, ctime) -> hash so unchanged files are not even re-read. A cache file that
is not a readable database is set aside (``scores.sqlite.corrupt-<time>``) and a new one started.

SQLite (not Parquet) because results arrive in chunks: each chunk is one atomic transaction, so an
interrupted run keeps everything scored so far and a crash never leaves a half-written cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from tigas_core.config import TIGASConfig
from tigas_core.io import file_digest, file_stamp, path_text
from tigas_core.results import SCORE_COLUMNS

log = logging.getLogger("tigas.cache")

if TYPE_CHECKING:  # the API module pulls in the model; annotations only
    from tigas_core.api import TIGAS

# Bump when what is stored per image changes; older rows are then ignored (and never misread).
CACHE_VERSION = 1
ProgressCallback = Callable[[int, int], None]


def default_cache_dir() -> Path:
    """$TIGAS_CACHE_DIR, else ~/.cache/tigas: never inside the data folder, which may be read-only or shared."""
    return Path(os.environ.get("TIGAS_CACHE_DIR") or Path.home() / ".cache" / "tigas")


def model_identity(model: torch.nn.Module, config: TIGASConfig) -> str:
    """Hash of the config, every parameter/buffer and the code that turns pixels into scores.

    Equal identities mean equal scores: new weights, a recalibration or an edit to the model,
    spectra or preprocessing code all start a fresh set of cache entries.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    digest.update(f"cache-v{CACHE_VERSION}".encode())
    package = Path(__file__).resolve().parent
    for source in sorted([*package.glob("model/*.py"), package / "spectral.py", package / "io.py", package / "api.py"]):
        digest.update(source.read_bytes())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def scorer_identity(tigas: TIGAS) -> str:
    """`model_identity` plus the views a TIGAS averages over and the precision its trunk computes in:
    what makes two scores comparable."""
    options = ((tigas.views, "single"), (tigas.precision, "fp32"))
    return model_identity(tigas.model, tigas.config) + "".join(f"+{value}" for value, default in options if value != default)


@dataclasses.dataclass
class ScoredSet:
    """Everything the dashboard shows about a list of files, rows in input order.

    Arrays hold NaN rows for files that could not be scored (their ``error`` says why).
    """

    table: pd.DataFrame  # path, digest, score, branch scores, branch weights, verdict, error
    features: np.ndarray  # [N, feature_dim] fused TIGAS features (for the Frechet distance)
    profiles: np.ndarray  # [N, radial_bins] normalised log10 radial power profile of the model view
    spectra: np.ndarray  # [N, S, S] float16 mean-removed log10 power spectrum of the model view, pooled to S = spectrum_size
    n_scored: int  # files that had to be scored in this call (not found in the cache)
    n_hashed: int  # files whose content had to be read to find their hash


class ScoreCache:
    """SQLite-backed store of per-image TIGAS results for one model."""

    def __init__(self, tigas: TIGAS, cache_dir: str | os.PathLike | None = None, model_id: str | None = None):
        self.tigas = tigas
        self.model_id = model_id or scorer_identity(tigas)
        self.path = Path(cache_dir or default_cache_dir()) / "scores.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.spectrum_size = int(tigas.config.spectrum_size)
        self.radial_bins = int(tigas.config.radial_bins)
        try:
            self._create()
        except sqlite3.DatabaseError as exc:  # not a database, or damaged pages: set it aside and start afresh
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            log.warning("score cache %s was unreadable (%s); moved it to %s and started a new one", self.path, exc, aside.name)
            self._create()

    def _create(self) -> None:
        with self._connect() as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            db.executescript(
                f"""
                DROP TABLE IF EXISTS files;
                CREATE TABLE IF NOT EXISTS file_digests (path TEXT PRIMARY KEY, stamp TEXT, digest TEXT);
                CREATE TABLE IF NOT EXISTS results (
                    model_id TEXT, digest TEXT, version INTEGER,
                    {", ".join(f"{column} REAL" for column in SCORE_COLUMNS)},
                    verdict TEXT, error TEXT, features BLOB, profile BLOB, spectrum BLOB,
                    PRIMARY KEY (model_id, digest));
                """
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose block is one transaction: committed on success, rolled back on error, then closed."""
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers (other dashboard sessions) never block a writer
            with db:
                yield db
        finally:
            db.close()

    # -- hashing ---------------------------------------------------------------------------
    def digests(self, paths: Sequence[str]) -> tuple[list[str | None], dict[str, str], int]:
        """Content hash per path (None where the file cannot be read), errors by path, and how many were read."""
        with self._connect() as db:
            keys = [path_text(path) for path in paths]  # SQLite, like CSV, takes only valid UTF-8
            known = {row[0]: row[1:] for row in _select_in(db, "SELECT path, stamp, digest FROM file_digests WHERE path IN ({})", keys)}
        result: list[str | None] = []
        errors: dict[str, str] = {}
        updates = []
        for path, key in zip(paths, keys):
            try:
                stamp = file_stamp(os.stat(path))
                cached = known.get(key)
                if cached and cached[0] == stamp:
                    result.append(cached[1])
                    continue
                digest = file_digest(path)
            except OSError as exc:
                errors[path] = exc.strerror or type(exc).__name__  # like the API's errors: the reason, not the path
                result.append(None)
                continue
            updates.append((key, stamp, digest))
            result.append(digest)
        if updates:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?)", updates)
        return result, errors, len(updates)

    # -- scoring ---------------------------------------------------------------------------
    def score(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int = 16,
        chunk_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> ScoredSet:
        """Results for ``paths`` in order, scoring only contents this model has not seen.

        ``progress(done, total)`` is called after each chunk of newly scored files. Never raises
        for a bad file: its row carries the reason in ``error``.
        """
        paths = [os.path.abspath(p) for p in paths]
        digests, read_errors, n_hashed = self.digests(paths)
        wanted = sorted({d for d in digests if d is not None})
        stored = self._load(wanted)
        first_path = {}
        for path, digest in zip(paths, digests):
            if digest is not None:
                first_path.setdefault(digest, path)
        missing = [d for d in wanted if d not in stored]
        total = len(missing)
        if progress:
            progress(0, total)
        for start in range(0, total, chunk_size):
            chunk = missing[start : start + chunk_size]
            rows = self._score_chunk([first_path[d] for d in chunk], chunk, batch_size)
            with self._connect() as db:  # one transaction per chunk: interrupted runs keep their work
                db.executemany(f"INSERT OR REPLACE INTO results VALUES ({', '.join('?' * (len(SCORE_COLUMNS) + 8))})", rows)
            stored.update(self._decode(row) for row in rows)
            if progress:
                progress(min(start + chunk_size, total), total)
        return self._assemble(paths, digests, read_errors, stored, n_scored=total, n_hashed=n_hashed)

    def _score_chunk(self, paths: list[str], digests: list[str], batch_size: int) -> list[tuple]:
        """Rows to store for one chunk: scores, fused features, radial profile and pooled spectrum
        all come from one decode and one forward pass (`TIGAS.iter_file_results`)."""
        rows = []
        for digest, record in zip(digests, self.tigas.iter_file_results(paths, batch_size, with_features=True)):
            if record["error"]:
                rows.append((self.model_id, digest, CACHE_VERSION, *[float("nan")] * len(SCORE_COLUMNS), "",
                             record["error"], None, None, None))
                continue
            blobs = (record["features"].astype(np.float32).tobytes(), record["spectral_profile"].astype(np.float32).tobytes(),
                     record["spectrum_grid"].astype(np.float16).tobytes())
            rows.append((self.model_id, digest, CACHE_VERSION, *[float(record[c]) for c in SCORE_COLUMNS],
                         str(record["verdict"]), "", *blobs))
        return rows

    # -- reading ---------------------------------------------------------------------------
    def _load(self, digests: Sequence[str]) -> dict[str, dict]:
        with self._connect() as db:
            rows = _select_in(
                db,
                "SELECT * FROM results WHERE model_id = ? AND version = ? AND digest IN ({})",
                digests,
                prefix=(self.model_id, CACHE_VERSION),
            )
        return dict(self._decode(row) for row in rows)

    def _decode(self, row: tuple) -> tuple[str, dict]:
        """A results row (model_id, digest, version, SCORE_COLUMNS, verdict, error, three blobs) -> (digest, values)."""
        numbers_end = 3 + len(SCORE_COLUMNS)
        values = dict(zip(SCORE_COLUMNS, row[3:numbers_end]))
        verdict_text, error, features, profile, spectrum = row[numbers_end:]
        values.update(verdict=verdict_text, error=error)
        values["features"] = None if features is None else np.frombuffer(features, np.float32)
        values["profile"] = None if profile is None else np.frombuffer(profile, np.float32)
        values["spectrum"] = None if spectrum is None else np.frombuffer(spectrum, np.float16)
        return row[1], values

    def _assemble(
        self,
        paths: list[str],
        digests: list[str | None],
        read_errors: dict[str, str],
        stored: dict[str, dict],
        n_scored: int,
        n_hashed: int,
    ) -> ScoredSet:
        n = len(paths)
        feature_dim = next((len(v["features"]) for v in stored.values() if v["features"] is not None), 0)
        features = np.full((n, feature_dim), np.nan, np.float32)
        profiles = np.full((n, self.radial_bins), np.nan, np.float32)
        spectra = np.full((n, self.spectrum_size, self.spectrum_size), np.nan, np.float16)
        records = []
        for i, (path, digest) in enumerate(zip(paths, digests)):
            values = stored.get(digest) if digest else None
            if values is None:
                records.append({"path": path_text(path), "digest": digest or "", **dict.fromkeys(SCORE_COLUMNS, np.nan),
                                "verdict": "", "error": read_errors.get(path, "not scored")})
                continue
            records.append({"path": path_text(path), "digest": digest, **{c: values[c] for c in SCORE_COLUMNS},
                            "verdict": values["verdict"], "error": values["error"]})
            if values["features"] is not None:
                features[i] = values["features"]
                profiles[i] = values["profile"]
                spectra[i] = values["spectrum"].reshape(self.spectrum_size, self.spectrum_size)
        table = pd.DataFrame.from_records(records, columns=["path", "digest", *SCORE_COLUMNS, "verdict", "error"])
        table[list(SCORE_COLUMNS)] = table[list(SCORE_COLUMNS)].astype(float)
        return ScoredSet(table, features, profiles, spectra, n_scored=n_scored, n_hashed=n_hashed)


def _select_in(db: sqlite3.Connection, sql: str, keys: Sequence[str], prefix: tuple = (), size: int = 900) -> list[tuple]:
    """Run ``sql`` with an IN (...) list over ``keys`` in slices below SQLite's parameter limit."""
    rows: list[tuple] = []
    keys = list(keys)
    for start in range(0, len(keys), size):
        part = keys[start : start + size]
        rows.extend(db.execute(sql.format(", ".join("?" * len(part))), (*prefix, *part)).fetchall())
    return rows

