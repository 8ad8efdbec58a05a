"""What each face of TIGAS says for bad input: regenerates docs/bad_inputs.md.

    python benchmarks/bad_input_table.py [--out docs/bad_inputs.md]

Makes its own inputs (damaged and odd files, decompression-bomb headers, an animation, links that
loop or dangle, oversized files; odd tensors, arrays and bytes; bad options) in a temporary folder,
then really asks the three faces: the Python API (`TIGAS(...)(input)`), the command line (one
`tigas score` run over every file, plus a run per option) and the app's HTTP API (`tigas app`
started on a free port, called with gradio_client's `/score`, as tests/test_app.py does). The
weights are a small random model's: the messages do not depend on them, and "scored" only says
that a score came back. Temporary folders are cut from the messages, so the table reads the same
on every run.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tigas_core.api import TIGAS  # noqa: E402
from tigas_core.hub import save_pretrained  # noqa: E402
from tigas_core.io import TIGASInputError  # noqa: E402
from tigas_core.local_server import LocalServer, free_port  # noqa: E402
from tigas_core.model import create_tigas_model  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
NOT_A_FILE = "— (not a file)"
NOTHING_TO_UPLOAD = "— (nothing to upload)"
APP_MAX_FILE_MB = 10  # the app's default, so the table shows what a visitor meets


@dataclass
class Case:
    """One row: what the input is, the object the Python API gets, and the path the CLI and app get."""

    label: str
    source: object
    path: Path | None = None
    uploadable: bool = True


# ------------------------------------------------------------------------------------- inputs


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _photo(size: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    noise = np.random.default_rng(0).normal(0, 8, (size, size, 3))
    return np.clip(np.stack([xx * 2.0, yy * 2.2, (xx + yy) * 1.1], -1) + noise, 0, 255).astype(np.uint8)


def _png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims width x height (a decompression bomb's header)."""
    data = bytearray(_png(np.zeros((8, 8), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _animated_gif() -> bytes:
    frames = [Image.fromarray(np.roll(_photo(), shift, axis=1)) for shift in (0, 8, 16)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def file_cases(folder: Path) -> list[Case]:
    """Files every face can be given (and some that only exist as paths)."""
    photo = _png(_photo())
    jpeg = io.BytesIO()
    Image.fromarray(_photo()).save(jpeg, "JPEG")
    contents = {
        "photo.png (a good image)": ("photo.png", photo),
        "photo.jpg, CMYK": ("cmyk.jpg", _encoded_cmyk()),
        "16-bit grey PNG": ("deep.png", _png((np.mgrid[0:64, 0:64][1] * 1000).astype(np.uint16))),
        "animated GIF (3 frames)": ("moving.gif", _animated_gif()),
        "empty file": ("empty.jpg", b""),
        "JPEG cut in half": ("half.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) // 2]),
        "PNG cut to its header": ("header.png", photo[:40]),
        "text file named .jpg": ("notes.jpg", b"this is not an image\n" * 5),
        "HTML page named .png": ("page.png", b"<html><body>not found</body></html>"),
        "random bytes named .png": ("noise.png", np.random.default_rng(1).bytes(4096)),
        "16x16 image": ("tiny.png", _png(np.zeros((16, 16, 3), np.uint8))),
        "31x400 image": ("thin.png", _png(np.zeros((400, 31, 3), np.uint8))),
        "PNG header claiming 10000x10000 (100 Mpx)": ("bomb100.png", _png_claiming(10_000, 10_000)),
        "PNG header claiming 15000x15000 (225 Mpx)": ("bomb225.png", _png_claiming(15_000, 15_000)),
        "12 MiB PNG (over the app's 10 MiB)": ("big.png", _png(np.random.default_rng(2).integers(0, 256, (2048, 2048, 3), np.uint8))),
    }
    cases = []
    for label, (name, data) in contents.items():
        (folder / name).write_bytes(data)
        cases.append(Case(label, folder / name, folder / name))
    cases.append(_over_100_mib(folder / "huge.png", photo))
    cases += _path_cases(folder)
    return cases


def _encoded_cmyk() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_photo()).convert("CMYK").save(buffer, "JPEG")
    return buffer.getvalue()


def _over_100_mib(path: Path, head: bytes) -> Case:
    with open(path, "wb") as handle:  # a PNG followed by zeros, sparse on disk
        handle.write(head)
        handle.truncate(101 * 2**20)
    return Case("101 MiB file", path, path)


def _path_cases(folder: Path) -> list[Case]:
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "dangling.png").symlink_to(folder / "deleted.png")
    (folder / "folder.jpg").mkdir()
    return [
        Case("missing file", folder / "missing.png", folder / "missing.png", uploadable=False),
        Case("symlink loop", folder / "loop.png", folder / "loop.png", uploadable=False),
        Case("broken symlink", folder / "dangling.png", folder / "dangling.png", uploadable=False),
        Case("folder named folder.jpg (no images in it)", folder / "folder.jpg", folder / "folder.jpg", uploadable=False),
    ]


def memory_cases(folder: Path) -> list[Case]:
    """Inputs only the Python API takes."""
    pixels = torch.from_numpy(_photo()).permute(2, 0, 1)
    return [
        Case("uint8 tensor [3,H,W]", pixels),
        Case("int64 tensor, values 0-255", pixels.long()),
        Case("int64 tensor with a -1", pixels.long() - 1),
        Case("uint32 tensor, values 0-255", pixels.to(torch.uint32)),
        Case("float tensor, values 0-255", pixels.float()),
        Case("float tensor in [-1, 1]", pixels.float() / 127.5 - 1),
        Case("float tensor with a NaN", torch.where(pixels == pixels.max(), torch.nan, pixels / 255.0)),
        Case("complex tensor", pixels.to(torch.complex64)),
        Case("channel-last tensor [H,W,3]", pixels.permute(1, 2, 0).float() / 255),
        Case("grey tensor [H,W]", pixels[0].float() / 255),
        Case("5-D tensor [1,1,3,H,W]", pixels[None, None].float() / 255),
        Case("empty batch [0,3,H,W]", torch.zeros(0, 3, 96, 96)),
        Case("tensor [3,0,64]", torch.zeros(3, 0, 64)),
        Case("sparse tensor", (pixels.float() / 255).to_sparse()),
        Case("numpy array of objects", np.array([[object()]], dtype=object)),
        Case("the bytes of photo.png", (folder / "photo.png").read_bytes()),
        Case("a path given as bytes", os.fsencode(folder / "photo.png")),
        Case('"" (an empty path)', ""),
        Case("None", None),
        Case("[] (an empty list)", []),
    ]


# -------------------------------------------------------------------------------------- faces


def python_api(tigas: TIGAS, source: object) -> str:
    """What `tigas(source)` gives: "scored" (and any warning), or the error's message."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tigas(source)
    except TIGASInputError as exc:
        return f"TIGASInputError: {exc}"
    except Exception as exc:  # the table would show it: no such row is expected
        return f"**{type(exc).__name__}**: {exc}"
    notes = [f"warning: {w.message}" for w in caught if w.category.__name__ == "TIGASInputWarning"]
    return "; ".join(["scored", *notes])


def tigas_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tigas_core.cli", "score", *args], capture_output=True, text=True,
                          timeout=600)


def cli_rows(paths: list[Path], weights: Path) -> dict[str, str]:
    """One `tigas score` over every file: path -> its line (the ERROR reason, or "scored" and a note)."""
    proc = tigas_cli(*map(str, paths), "--weights", str(weights))
    rows: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("ERROR  "):
            path, _, reason = line[len("ERROR  "):].partition(": ")
            rows[path] = f"ERROR {Path(path).name}: {reason}"
            continue
        for path in map(str, paths):
            if line.endswith(f"  {path}") or f"  {path}  (note: " in line:
                rows[path] = " ".join(["scored", line.split(f"  {path}", 1)[1].strip()]).strip()
    return rows


def cli_option_rows(image: Path, weights: Path, folder: Path) -> list[tuple[str, str]]:
    """Bad options: each its own `tigas score` run; the row is what the user reads on stderr."""
    runs = {
        "--threshold 5": ["--threshold", "5"],
        "--csv into a folder that does not exist": ["--csv", str(folder / "new_folder" / "s.csv"), "-q"],
        "--csv into a folder that cannot be written": ["--csv", "/sys/s.csv"],
        "--csv naming one of the images": ["--csv", str(image)],
    }
    rows = []
    for label, extra in runs.items():
        proc = tigas_cli(str(image), "--weights", str(weights), *extra)
        said = [line for line in proc.stderr.splitlines() if line.startswith(("note:", "ERROR", "tigas score: error"))][-1:]
        outcome = "scored" if proc.returncode == 0 else f"exit {proc.returncode}"
        rows.append((label, f"{outcome}: {said[0]}" if said else outcome))
    return rows


def app_row(client, path: Path | None, uploadable: bool, threshold: float | None = None) -> str:
    """What `/score` answers for one upload: "scored" (and its note), or the app's error."""
    from gradio_client import handle_file

    if path is None:
        return NOT_A_FILE
    if not uploadable:
        return NOTHING_TO_UPLOAD
    try:
        result = client.predict(handle_file(str(path)), threshold, api_name="/score")
    except Exception as exc:
        return f"error: {exc}"
    return "scored" + (f"; note: {result['note']}" if result["note"] else "")


# -------------------------------------------------------------------------------------- table


def cell(text: str, folder: Path) -> str:
    return text.replace(f"{folder}{os.sep}", "").replace(str(folder), "…").replace("|", "\\|").replace("\n", " ")


def build_table(folder: Path, weights: Path, url: str) -> list[tuple[str, str, str, str]]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    tigas = TIGAS(str(weights), device="cpu")
    files, memory = file_cases(folder), memory_cases(folder)
    cli = cli_rows([case.path for case in files if not case.path.is_dir()], weights)
    folder_run = tigas_cli(str(folder / "folder.jpg"), "--weights", str(weights))
    cli[str(folder / "folder.jpg")] = next(line for line in folder_run.stderr.splitlines() if line.startswith("warning:"))
    rows = [(case.label, python_api(tigas, case.source), cli.get(str(case.path), "—"), app_row(client, case.path, case.uploadable))
            for case in files]
    rows += [(case.label, python_api(tigas, case.source), NOT_A_FILE, NOT_A_FILE) for case in memory]
    options = dict(cli_option_rows(folder / "photo.png", weights, folder))
    rows.append(("threshold 5", "— (the API takes no threshold)", options.pop("--threshold 5"),
                 app_row(client, folder / "photo.png", True, threshold=5.0)))
    rows += [(label, "—", said, "—") for label, said in options.items()]
    return [(label, *(cell(text, folder) for text in texts)) for label, *texts in rows]


def markdown(rows: list[tuple[str, str, str, str]]) -> str:
    lines = [
        "# Bad input: what each face says",
        "",
        "Generated by `python benchmarks/bad_input_table.py` (do not edit by hand): every row is a real call of",
        "the Python API (`TIGAS(...)(input)`), the command line (`tigas score`) and the app's HTTP API (`tigas app`,",
        f"defaults: {APP_MAX_FILE_MB} MiB per file; gradio_client's `/score`). The weights are a small random model's;",
        "\"scored\" says a score came back. Input rules: [input_rules.md](input_rules.md).",
        "",
        "| input | Python API | CLI (`tigas score`) | app HTTP API (`/score`) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines) + "\n"


def launch_app(weights: Path, log: Path) -> tuple[LocalServer, str]:
    port = free_port()
    tigas_cmd = shutil.which("tigas", path=str(Path(sys.executable).parent)) or "tigas"
    command = [tigas_cmd, "app", "--weights", str(weights), "--port", str(port), "--share", "false", "--no-examples",
               "--max-file-mb", str(APP_MAX_FILE_MB)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    url = f"http://127.0.0.1:{port}/"
    return LocalServer(command, url + "config", log, env, timeout_s=180), url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tigas_bad_inputs_") as tmp:
        root = Path(tmp)
        weights = save_pretrained(create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32), root / "weights")
        (root / "in").mkdir()
        server, url = launch_app(weights, root / "app.log")
        with server:
            rows = build_table(root / "in", weights, url)
        if "Traceback" in (root / "app.log").read_text():
            print("the app logged a traceback:\n" + server.log_tail(), file=sys.stderr)
            return 1
    args.out.write_text(markdown(rows))
    print(f"{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
