"""Fuzz the file decoder: mutated JPEG, PNG, GIF and WebP bytes through `tigas_core.io.read_image`.

    python benchmarks/fuzz_decoder.py [--inputs 200000] [--seed 0] [--out benchmarks/results/fuzz_decoder.txt]

Every file a user hands TIGAS must end as a decoded image or as a TIGASInputError that names it and
says why; any other exception is a crash. The seed files are made here with PIL from generated
images (no data set is read): photo-like noise, an alpha gradient and a grey ramp, saved as
baseline and progressive JPEG (one with an EXIF orientation), PNG (RGB, RGBA, palette, 16-bit,
interlaced), GIF (still and animated) and WebP (lossy, lossless, animated). Each input is a seed
with one to three mutations: bit flips, interesting bytes and integers (0, 255, 65535, 2^31-1: the
values that break size fields), truncation, deleted, duplicated or inserted blocks, and a splice
of two seeds. Half the PNG mutants get their chunk CRCs recomputed, so mutations reach the
decoder past PNG's checksum test. Inputs decode with a 4 Mpx limit (the guard that refuses larger
claimed sizes is the same code at any limit), so a mutated size field cannot fill the memory of a
small machine. Writes the count of inputs tried, every outcome and any crash, with the seed and
mutations to reproduce it.
"""
from __future__ import annotations

import argparse
import io
import struct
import sys
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tigas_core.io import TIGASInputError, read_image  # noqa: E402

FUZZ_MAX_PIXELS = 4_000_000
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
INTERESTING_INTS = (0, 1, 2, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)
OUT = Path(__file__).resolve().parent / "results" / "fuzz_decoder.txt"

Mutation = Callable[[bytes, np.random.Generator, list[bytes]], bytes]


# ---------------------------------------------------------------------------------------- seeds


def base_images(seed: int = 0) -> dict[str, Image.Image]:
    """Three generated pictures: low-pass colour noise (photo-like), an RGBA gradient, a grey ramp."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((80, 96, 3))
    spectrum = np.fft.fft2(noise, axes=(0, 1))
    fy, fx = np.fft.fftfreq(80)[:, None], np.fft.fftfreq(96)[None, :]
    field = np.real(np.fft.ifft2(spectrum / np.maximum(np.hypot(fy, fx), 1 / 96)[..., None], axes=(0, 1)))
    photo = ((field - field.min()) / np.ptp(field) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:64, 0:72]
    rgba = np.stack([xx * 3, yy * 4, (xx + yy) * 2, (xx * 255 // 71)], axis=-1).astype(np.uint8)
    return {"photo": Image.fromarray(photo), "alpha": Image.fromarray(rgba, "RGBA"),
            "grey": Image.fromarray((yy * 4 + xx).astype(np.uint8), "L")}


def _encoded(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def _frames(image: Image.Image) -> list[Image.Image]:
    return [image.rotate(angle) for angle in (0, 90, 180)]


def seed_files(seed: int = 0) -> dict[str, bytes]:
    """name -> encoded bytes of every seed file, all made here with PIL."""
    images = base_images(seed)
    photo, alpha, grey = images["photo"], images["alpha"], images["grey"]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees on display"
    return {
        "baseline.jpg": _encoded(photo, format="JPEG", quality=90),
        "progressive.jpg": _encoded(photo, format="JPEG", quality=50, progressive=True),
        "exif.jpg": _encoded(photo, format="JPEG", exif=exif.tobytes()),
        "grey.jpg": _encoded(grey, format="JPEG"),
        "rgb.png": _encoded(photo, format="PNG"),
        "rgba.png": _encoded(alpha, format="PNG"),
        "palette.png": _encoded(photo.convert("P"), format="PNG"),
        "16bit.png": _encoded(Image.fromarray(np.asarray(grey, np.uint16) * 257), format="PNG"),
        "interlaced.png": _encoded(photo, format="PNG", interlace=1),
        "still.gif": _encoded(photo, format="GIF"),
        "transparent.gif": _encoded(alpha, format="GIF"),
        "animated.gif": _encoded(photo, format="GIF", save_all=True, append_images=_frames(photo)[1:], duration=80),
        "lossy.webp": _encoded(photo, format="WEBP", quality=70),
        "lossless.webp": _encoded(alpha, format="WEBP", lossless=True),
        "animated.webp": _encoded(photo, format="WEBP", save_all=True, append_images=_frames(photo)[1:]),
    }


# ------------------------------------------------------------------------------------ mutations


def _position(data: bytes, rng: np.random.Generator) -> int:
    return int(rng.integers(0, max(1, len(data))))


def flip_bits(data: bytes, rng: np.random.Generator, _: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9)) if out else 0):
        index = _position(out, rng)
        out[index] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def interesting_bytes(data: bytes, rng: np.random.Generator, _: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5)) if out else 0):
        out[_position(out, rng)] = INTERESTING_BYTES[int(rng.integers(len(INTERESTING_BYTES)))]
    return bytes(out)


def interesting_int(data: bytes, rng: np.random.Generator, _: list[bytes]) -> bytes:
    """A 16- or 32-bit value that breaks size and length fields, either byte order, anywhere."""
    value = INTERESTING_INTS[int(rng.integers(len(INTERESTING_INTS)))]
    code = ("<" if rng.random() < 0.5 else ">") + ("H" if value <= 0xFFFF and rng.random() < 0.5 else "I")
    packed = struct.pack(code, value & (0xFFFF if code.endswith("H") else 0xFFFFFFFF))
    index = _position(data, rng)
    return data[:index] + packed + data[index + len(packed):]


def truncate(data: bytes, rng: np.random.Generator, _: list[bytes]) -> bytes:
    return data[:_position(data, rng)]


def delete_block(data: bytes, rng: np.random.Generator, _: list[bytes]) -> bytes:
    start = _position(data, rng)
    return data[:start] + data[start + int(rng.integers(1, 65)):]


def duplicate_block(data: bytes, rng: np.random.Generator, _: list[bytes]) -> bytes:
    start = _position(data, rng)
    block = data[start:start + int(rng.integers(1, 129))]
    index = _position(data, rng)
    return data[:index] + block + data[index:]


def insert_random(data: bytes, rng: np.random.Generator, _: list[bytes]) -> bytes:
    index = _position(data, rng)
    return data[:index] + rng.bytes(int(rng.integers(1, 33))) + data[index:]


def splice(data: bytes, rng: np.random.Generator, seeds: list[bytes]) -> bytes:
    other = seeds[int(rng.integers(len(seeds)))]
    return data[:_position(data, rng)] + other[_position(other, rng):]


MUTATIONS: dict[str, Mutation] = {
    "flip_bits": flip_bits, "interesting_bytes": interesting_bytes, "interesting_int": interesting_int,
    "truncate": truncate, "delete_block": delete_block, "duplicate_block": duplicate_block,
    "insert_random": insert_random, "splice": splice,
}


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every whole chunk's CRC, so a mutant gets past PNG's checksum into the decoder."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out, offset = bytearray(data), 8
    while offset + 12 <= len(out):
        length = struct.unpack(">I", out[offset:offset + 4])[0]
        end = offset + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(out[offset + 4:end]) & 0xFFFFFFFF)
        offset = end + 4
    return bytes(out)


def mutate(name: str, data: bytes, rng: np.random.Generator, seeds: list[bytes]) -> tuple[bytes, list[str]]:
    """One to three mutations of a seed, and their names (to reproduce a crash)."""
    names = [list(MUTATIONS)[int(i)] for i in rng.integers(0, len(MUTATIONS), int(rng.integers(1, 4)))]
    for mutation in names:
        data = MUTATIONS[mutation](data, rng, seeds)
    if name.endswith(".png") and rng.random() < 0.5:
        data, names = fix_png_crcs(data), names + ["fix_png_crcs"]
    return data, names


# ------------------------------------------------------------------------------------------ run


def outcome(data: bytes, label: str) -> str:
    """"scored", "scored with a note", "TIGASInputError: <reason kind>"; anything else raises."""
    try:
        _, note = read_image(data, name=label, max_pixels=FUZZ_MAX_PIXELS)
    except TIGASInputError as exc:
        return "TIGASInputError: " + exc.reason.split(" (")[0].split(";")[0]
    return "scored with a note" if note else "scored"


def fuzz(inputs: int, seed: int = 0) -> dict:
    """Run ``inputs`` mutants; returns counts by outcome, crashes (with how to reproduce them) and timings."""
    seeds = seed_files(seed)
    for name, data in seeds.items():  # every seed is a readable image: the mutants start from real files
        assert outcome(data, name).startswith("scored"), name
    rng = np.random.default_rng(seed)
    names, blobs = list(seeds), list(seeds.values())
    counts: Counter[str] = Counter()
    crashes: list[dict] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    for index in range(inputs):
        name = names[int(rng.integers(len(names)))]
        data, mutations = mutate(name, seeds[name], rng, blobs)
        tick = time.perf_counter()
        try:
            counts[outcome(data, f"mutant {index} of {name}")] += 1
        except Exception as exc:  # the point of the run: anything that is not a TIGASInputError
            counts["crash"] += 1
            crashes.append({"input": index, "seed_file": name, "mutations": mutations, "error": f"{type(exc).__name__}: {exc}",
                            "where": traceback.format_exc(limit=-3).strip().splitlines()[-3:]})
        elapsed = time.perf_counter() - tick
        slowest = max(slowest, (elapsed, f"mutant {index} of {name} ({', '.join(mutations)})"))
    return {"inputs": inputs, "seed": seed, "seed_files": names, "counts": counts, "crashes": crashes,
            "seconds": time.perf_counter() - started, "slowest": slowest}


def report(result: dict) -> str:
    counts = result["counts"]
    kinds = Counter(name.rsplit(".", 1)[1].upper().replace("JPG", "JPEG") for name in result["seed_files"])
    lines = [
        "TIGAS decoder fuzz: mutated image files through tigas_core.io.read_image (benchmarks/fuzz_decoder.py)",
        f"inputs tried: {result['inputs']} (random seed {result['seed']}), in {result['seconds']:.0f} s",
        f"seed files: {len(result['seed_files'])} made with PIL ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}): "
        + ", ".join(result["seed_files"]),
        f"slowest input: {result['slowest'][0]:.2f} s ({result['slowest'][1]})",
        "",
        "outcome                                              inputs",
    ]
    lines += [f"{kind:<52} {count:>6}" for kind, count in sorted(counts.items(), key=lambda item: -item[1])]
    lines += ["", f"crashes (exceptions other than TIGASInputError): {counts['crash']}"]
    for crash in result["crashes"][:20]:
        lines.append(f"- input {crash['input']} from {crash['seed_file']} ({', '.join(crash['mutations'])}): {crash['error']}")
        lines += [f"    {line}" for line in crash["where"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200_000, help="mutants to try")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = fuzz(args.inputs, args.seed)
    text = report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text, end="")
    return 1 if result["counts"]["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
