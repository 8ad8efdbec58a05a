"""Score image collections too large for one machine on a Ray cluster, with Ray Data.

`score_dataset` (and `tigas score --engine ray`) streams a Ray Data pipeline:

  paths, listed on the driver as `compute_directory` lists a folder (or from a Parquet/CSV index)
    -> read: each file's bytes and digest (`io.read_file_bytes`, `io.bytes_digest`); a file that
       cannot be read becomes a row with its reason, never a failed task
    -> score (an actor pool, one `TIGAS` per actor, on a GPU when the cluster has them): decode
       and views with `TIGAS.load_views`, rows with `TIGAS.score_loaded`, as compute_directory does
       (Ray Data runs the read in the CPU actors' own processes: bytes never cross the object store)
    -> rows streamed back to the driver and written to OUT.parquet

Rows are written as they arrive, as atomic part files in OUT.parquet.parts/; a finished run merges
them into OUT.parquet atomically. A rerun with the same OUT skips every file whose digest OUT (or
its parts) already holds, so an interrupted run continues where it stopped and loses nothing it
wrote. Every node must read the files under the same paths (a shared filesystem) and have TIGAS
installed; the model itself is shipped from the driver.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from tigas_core.api import RESULT_COLUMNS, TIGAS
from tigas_core.config import atomic_write_bytes
from tigas_core.io import TIGASInputError, bytes_digest, is_folder, list_folder, path_text, read_file_bytes
from tigas_core.score_cache import scorer_identity

logger = logging.getLogger("tigas")

OUTPUT_COLUMNS = [*RESULT_COLUMNS, "digest", "node_id"]
INDEX_SUFFIXES = (".parquet", ".csv")
SCORER_KEY = b"tigas.scorer"  # Parquet metadata: which weights, views and precision scored the rows
FLUSH_ROWS = 5000  # a part file every FLUSH_ROWS rows...
FLUSH_SECONDS = 30.0  # ...or FLUSH_SECONDS, whichever comes first, so a kill loses little
GPU_DECODE_THREADS = 4  # a GPU scores faster than one thread decodes; Pillow decodes outside the GIL
CONNECT_TIMEOUT_S = 5.0


class ClusterError(OSError):
    """Ray is not installed, or the cluster at the given address does not answer."""


@dataclasses.dataclass
class ScoredDataset:
    """What `score_dataset` wrote: every row of OUT (OUTPUT_COLUMNS, sorted by path)."""

    table: pd.DataFrame
    newly_scored: int  # files decoded and scored by this run; the others' rows came from OUT
    out: Path


# ------------------------------------------------------------------ connecting
def import_ray() -> Any:
    """The ray module, or a ClusterError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs both)
    except ImportError as exc:
        raise ClusterError(f'the ray engine needs Ray Data: pip install "tigas-metric[ray]" ({exc})') from exc
    return ray


def check_reachable(address: str) -> None:
    """Refuse an address nothing listens on within seconds (ray.init would retry for minutes)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); "
                           "is it running? (`ray status` on its head node)") from None


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray joined at ``address`` for the block: None starts one on this machine (or joins
    $RAY_ADDRESS), "auto" joins this machine's cluster. A Ray this process already runs is used as
    it is and left running; one started here is shut down after."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address not in (None, "auto"):
        check_reachable(address)
    local = address is None and not os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address, logging_level=logging.WARNING, **({"include_dashboard": False} if local else {}))
    except ConnectionError as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


# ------------------------------------------------------------------ inputs
def list_inputs(sources: str | os.PathLike | Sequence[str | os.PathLike], recursive: bool = True) -> list[str]:
    """The files to score: a folder's image files (as `compute_directory` lists them), the ``path``
    column of a Parquet or CSV index (relative to the index's folder), any other path as given."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    paths: list[str] = []
    for item in items:
        if is_folder(item):
            found, skipped = list_folder(item, recursive)
            if skipped:
                logger.warning("%s: skipped %d file(s) that are not images by extension", os.fspath(item), skipped.total())
            paths += [os.fspath(p) for p in found]
        elif Path(item).suffix.lower() in INDEX_SUFFIXES and Path(item).is_file():
            paths += index_paths(Path(item))
        else:
            paths.append(os.fspath(item))
    return paths


def index_paths(index: Path) -> list[str]:
    """The ``path`` column of a Parquet or CSV index (a scores file of an earlier run is one too)."""
    try:
        if index.suffix.lower() == ".parquet":
            table = pq.read_table(index).to_pandas()
        else:
            table = pd.read_csv(index, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise TIGASInputError(str(index), f"cannot read the index ({exc})") from exc
    if "path" not in table.columns:
        raise TIGASInputError(str(index), f"an index needs a 'path' column; it has {', '.join(map(str, table.columns)) or 'none'}")
    return [p if os.path.isabs(p) else os.path.join(index.parent, p) for p in table["path"].astype(str)]


# ------------------------------------------------------------------ pipeline stages
def read_files(batch: pd.DataFrame, done: np.ndarray) -> pd.DataFrame:
    """Ray Data read stage: each file's bytes and digest, or its reason in ``error``. A file whose
    digest is in ``done`` (sorted, from OUT) is only marked ``known``: it is not scored again."""
    data, digests, errors = [], [], []
    for path, name in zip(batch["file"], batch["path"]):
        try:
            content = read_file_bytes(os.fsdecode(path), name)
            data.append(content)
            digests.append(bytes_digest(content))
            errors.append("")
        except TIGASInputError as exc:
            data.append(b"")
            digests.append("")
            errors.append(exc.reason)
    known = in_sorted(np.asarray(digests, dtype="S40"), done)
    data = [b"" if k else d for k, d in zip(known, data)]
    return pd.DataFrame({"path": batch["path"], "data": data, "digest": digests, "error": errors, "known": known})


def in_sorted(found: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Whether each of ``found`` is in the sorted ``done``, by binary search (done may be millions)."""
    if not len(done):
        return np.zeros(len(found), bool)
    return done[np.searchsorted(done, found).clip(max=len(done) - 1)] == found


class Scorer:
    """Ray Data actor: one TIGAS, decoding a batch in threads and scoring it in one forward pass."""

    def __init__(self, model: torch.nn.Module, views: str, precision: str, threshold: float, device: str, threads: int):
        import ray

        torch.set_num_threads(threads)
        self.tigas = TIGAS(model=model, views=views, precision=precision, device=device)
        self.tigas.threshold = threshold
        self.decoders = ThreadPoolExecutor(max_workers=threads)
        self.node_id = ray.get_runtime_context().get_node_id()

    def _load(self, row: tuple) -> tuple[torch.Tensor | None, str, str]:
        path, data, error, known = row
        if error or known:
            return None, error, ""
        return self.tigas.load_views(data, name=path)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = zip(batch["path"], batch["data"], batch["error"], batch["known"])
        loaded = list(self.decoders.map(self._load, rows))
        table = pd.DataFrame(self.tigas.score_loaded(list(batch["path"]), loaded), columns=RESULT_COLUMNS)
        return table.assign(digest=batch["digest"].to_numpy(), node_id=self.node_id, known=batch["known"].to_numpy())


def plan_workers(ray: Any, workers: int | None, device: str) -> tuple[int, dict, int]:
    """How many scoring actors, the resources of each and its threads: one per GPU when the
    cluster has GPUs (or ``device="cuda"``), else one per CPU (one thread each, the fastest on a
    CPU); ``workers`` overrides the count."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device {device!r}: the ray engine places actors on auto, cpu or cuda")
    if device == "cuda" and not gpus:
        raise ValueError("device cuda: the Ray cluster has no GPUs")
    if gpus and device != "cpu":
        return workers or gpus, {"num_cpus": 1, "num_gpus": 1}, GPU_DECODE_THREADS
    return workers or max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}, 1


def build_pipeline(ray: Any, todo: list[str], done: np.ndarray, tigas: TIGAS, workers: int | None, batch_size: int,
                   device: str) -> Any:
    """The Ray Dataset of result rows (OUTPUT_COLUMNS + ``known``) for ``todo``."""
    actors, resources, threads = plan_workers(ray, workers, device)
    files = [{"path": path_text(p), "file": os.fsencode(p)} for p in todo]
    blocks = max(actors * 2, math.ceil(len(files) / (batch_size * 4)))
    model = tigas.model if tigas.device.type == "cpu" else copy.deepcopy(tigas.model).cpu()
    return (
        ray.data.from_items(files, override_num_blocks=min(blocks, len(files)))
        .map_batches(read_files, batch_format="pandas", fn_kwargs={"done": done})
        .map_batches(Scorer, batch_format="pandas", batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
                     fn_constructor_kwargs={"model": model, "views": tigas.views, "precision": tigas.precision,
                                            "threshold": tigas.threshold,
                                            "device": "cuda" if resources.get("num_gpus") else "cpu", "threads": threads},
                     **resources)
    )


# ------------------------------------------------------------------ output
def parts_folder(out: Path) -> Path:
    """Where a run keeps the rows it has written so far (merged into ``out`` when it finishes)."""
    return out.with_name(out.name + ".parts")


def write_rows(table: pd.DataFrame, path: Path, scorer_id: str) -> None:
    """``table`` as Parquet at ``path``, atomically, marked with the scorer that made the rows."""
    arrow = pa.Table.from_pandas(table[OUTPUT_COLUMNS], preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), SCORER_KEY: scorer_id.encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def read_written(out: Path, scorer_id: str) -> pd.DataFrame:
    """Every row OUT and its parts hold (the newest per path), after checking that the same model
    (`scorer_identity`: weights, views, precision, code) made them: rows of another would not be comparable."""
    files = ([out] if out.exists() else []) + sorted(parts_folder(out).glob("*.parquet"))
    tables = []
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException) as exc:
            raise ValueError(f"{file}: not a readable Parquet file ({exc}); give another --out") from exc
        written_by = (table.schema.metadata or {}).get(SCORER_KEY, b"").decode()
        if written_by != scorer_id:
            raise ValueError(f"{file}: holds scores of another model (other weights, views, precision or TIGAS version) or is "
                             "no TIGAS scores file; give another --out, or delete it to score again")
        tables.append(table.to_pandas())
    if not tables:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    return pd.concat(tables, ignore_index=True).drop_duplicates("path", keep="last").reindex(columns=OUTPUT_COLUMNS)


class PartWriter:
    """Collects result rows and writes them as atomic part files: every FLUSH_ROWS rows or
    FLUSH_SECONDS, and on `flush` (also when the run is interrupted)."""

    def __init__(self, out: Path, scorer_id: str):
        self.folder = parts_folder(out)
        self.scorer_id = scorer_id
        self.pending: list[pd.DataFrame] = []
        self.written: list[pd.DataFrame] = []
        self.last = time.monotonic()

    def add(self, rows: pd.DataFrame) -> None:
        self.pending.append(rows)
        if sum(map(len, self.pending)) >= FLUSH_ROWS or time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        rows = [frame for frame in self.pending if len(frame)]
        self.pending = []
        if rows:
            table = pd.concat(rows, ignore_index=True)
            write_rows(table, self.folder / f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet", self.scorer_id)
            self.written.append(table)


class Written:
    """The rows OUT already holds, looked up by digest: a file the read stage marked ``known`` is
    written as a copy of its digest's row under its own path, or not at all if OUT has that pair."""

    def __init__(self, rows: pd.DataFrame):
        self.rows = rows
        self.by_digest = rows[rows["digest"] != ""].drop_duplicates("digest").set_index("digest").drop(columns="path")
        self.pairs = set(zip(rows["path"], rows["digest"]))

    def digests(self) -> np.ndarray:
        """Sorted digests, for the read stage's lookup."""
        return np.asarray(sorted(self.by_digest.index), dtype="S40")

    def settle(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The rows of one result batch to write."""
        known = batch["known"].to_numpy(bool)
        aliases = batch.loc[known, ["path", "digest"]]
        aliases = aliases[np.array([pair not in self.pairs for pair in zip(aliases["path"], aliases["digest"])], bool)]
        copies = aliases.join(self.by_digest, on="digest")
        return pd.concat([batch.loc[~known, OUTPUT_COLUMNS], copies[OUTPUT_COLUMNS]], ignore_index=True)


# ------------------------------------------------------------------ entry point
def score_dataset(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    tigas: TIGAS | None = None,
    *,
    recursive: bool = True,
    address: str | None = None,
    workers: int | None = None,
    batch_size: int = 16,
    device: str = "auto",
) -> ScoredDataset:
    """Score a folder, a list of files or a Parquet/CSV index (``path`` column) on Ray into the
    Parquet file ``out``: compute_directory's columns plus ``digest`` and the ``node_id`` that
    scored each row. Resumable: files whose digest ``out`` holds are not scored again.

    ``tigas`` (default: the bundled weights) is shipped to every actor; ``address`` as in
    `ray_session`; ``workers`` scoring actors (default: one per GPU, else one per CPU).
    """
    out = Path(out)
    tigas = tigas or TIGAS(device="cpu")
    scorer_id = scorer_identity(tigas)
    todo = list_inputs(sources, recursive)
    if not todo:
        named = os.fspath(sources) if isinstance(sources, (str, os.PathLike)) else ", ".join(map(os.fspath, sources))
        raise TIGASInputError(named, "no image files to score" + ("" if recursive else " (sub-folders are read only when recursive)"))
    done = Written(read_written(out, scorer_id))
    writer = PartWriter(out, scorer_id)
    scored = 0
    with ray_session(address) as ray:
        pipeline = build_pipeline(ray, todo, done.digests(), tigas, workers, batch_size, device)
        try:
            for batch in pipeline.iter_batches(batch_size=None, batch_format="pandas"):
                scored += int((~batch["known"].to_numpy(bool)).sum())
                writer.add(done.settle(batch))
        finally:
            writer.flush()  # an interrupted run keeps what it scored
    table = pd.concat([done.rows, *writer.written], ignore_index=True)
    table = table.drop_duplicates("path", keep="last").sort_values("path", ignore_index=True)
    write_rows(table, out, scorer_id)
    shutil.rmtree(parts_folder(out), ignore_errors=True)
    return ScoredDataset(pq.read_table(out).to_pandas(), scored, out)
