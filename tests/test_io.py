"""Image input: every mode converted correctly, EXIF honoured, and a matrix of bad inputs with clear errors."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tigas_core.io import (
    MIN_SIDE,
    TIGASInputError,
    TIGASInputWarning,
    check_threshold,
    iter_image_files,
    list_folder,
    load_image,
    preprocess,
    read_image,
)


def test_rgb_file_loads_as_float_chw(make_image):
    tensor = load_image(make_image("a.png", size=(96, 80)))
    assert tensor.shape == (3, 80, 96) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    base = Image.new("RGB", (40, 36), (200, 100, 50))
    if mode == "I;16":
        image = Image.fromarray(np.full((36, 40), 65535 // 2, dtype=np.uint16))
    else:
        image = base.convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".tif" if mode in ("I", "F") else ".png"
    path = tmp_path / f"img{suffix}"
    image.save(path)
    tensor = load_image(path)
    assert tensor.shape == (3, 36, 40)
    if mode == "I;16":
        assert torch.allclose(tensor, torch.full_like(tensor, 0.5), atol=1e-3)
    if mode in ("RGBA", "P", "CMYK"):
        assert tensor[0].mean() > tensor[2].mean() + 0.3  # still orange, not grey or inverted


def test_transparent_pixels_are_composited_on_white(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    assert torch.allclose(load_image(tmp_path / "t.png"), torch.ones(3, 40, 40))


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (60, 40), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 30, 40))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    tensor = load_image(tmp_path / "o.jpg")
    assert tensor.shape == (3, 60, 40)  # portrait after applying the tag
    assert tensor[:, :25].mean() > 0.9 and tensor[:, 35:].mean() < 0.1  # left half is now the top


def test_arrays_pil_bytes_and_tensors_agree(make_image):
    path = make_image("a.png")
    from_path = load_image(path)
    array = np.asarray(Image.open(path))
    assert torch.allclose(load_image(array), from_path)
    assert torch.allclose(load_image(Image.open(path)), from_path)
    assert torch.allclose(load_image(path.read_bytes()), from_path)
    assert torch.allclose(load_image(from_path), from_path)
    assert torch.allclose(load_image(array.astype(np.float32) / 255.0), from_path)


def test_preprocess_keeps_aspect_ratio_and_never_squashes():
    wide = torch.zeros(3, 100, 300)
    wide[:, :, 100:200] = 1.0  # a white square in the middle third
    out = preprocess(wide, 64)
    assert out.shape == (3, 64, 64)
    assert out.mean() > 0.95  # the centre crop is the square, undistorted


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[object, str]]:
    """name -> (input, expected words in the error)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(good, "JPEG")
    png = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(png, "PNG")
    files = {
        "zero_byte.jpg": (b"", "empty"),
        "truncated.jpg": (good.getvalue()[: len(good.getvalue()) // 2], "truncated"),
        "truncated.png": (png.getvalue()[: len(png.getvalue()) // 3], "truncated"),
        "text.jpg": (b"this is not an image at all\n" * 10, "not an image"),
        "page.png": (b"<html><body>hello</body></html>", "not an image"),
        "random.png": (np.random.default_rng(1).bytes(4096), "not an image"),
        "header_only.png": (png.getvalue()[:40], "truncated"),
    }
    cases: dict[str, tuple[object, str]] = {}
    for name, (data, reason) in files.items():
        (tmp_path / name).write_bytes(data)
        cases[name] = (tmp_path / name, reason)
    Image.new("RGB", (16, 16)).save(tmp_path / "tiny.png")
    cases["tiny.png"] = (tmp_path / "tiny.png", "too small")
    Image.new("RGB", (MIN_SIDE - 1, 400)).save(tmp_path / "thin.png")
    cases["thin.png"] = (tmp_path / "thin.png", "too small")
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")  # 81 Mpx in a few KB
    cases["bomb.png"] = (tmp_path / "bomb.png", "too large")
    cases["missing.jpg"] = (tmp_path / "missing.jpg", "not found")
    (tmp_path / "folder.jpg").mkdir()
    cases["folder.jpg"] = (tmp_path / "folder.jpg", "directory")
    return cases


def test_bad_file_matrix_gives_named_clear_errors(tmp_path):
    cases = _bad_inputs(tmp_path)
    assert len(cases) >= 12
    for name, (source, reason) in cases.items():
        with pytest.raises(TIGASInputError) as info:
            load_image(source)
        assert name in str(info.value), name
        assert reason in info.value.reason, f"{name}: {info.value.reason}"


@pytest.mark.parametrize(
    "source, reason",
    [
        (b"", "empty"),
        (12345, "unsupported input type"),
        (torch.full((3, 40, 40), float("nan")), "NaN"),
        (torch.rand(5, 40, 40), "channels"),
        (torch.rand(40), "got shape"),
        (np.zeros((40, 40, 3), dtype=np.complex64), "dtype"),
        (np.zeros((10, 10, 3), dtype=np.uint8), "too small"),
    ],
)
def test_bad_in_memory_inputs(source, reason):
    with pytest.raises(TIGASInputError, match=reason):
        load_image(source)


def test_bad_inputs_through_the_api(tigas, tmp_path):
    for name, (source, reason) in _bad_inputs(tmp_path).items():
        expected = "no image files" if name == "folder.jpg" else reason  # a folder is scored as a folder
        with pytest.raises(TIGASInputError, match=expected):
            tigas(source)
    with pytest.raises(TIGASInputError, match="no images"):
        tigas([])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(TIGASInputError, match="no image files"):
        tigas(tmp_path / "empty_dir")


def test_bad_inputs_through_the_cli(weights_dir, tmp_path, make_image):
    cases = _bad_inputs(tmp_path / "bad")
    good = make_image("ok/good.png", size=(64, 64))
    paths = [str(source) for source, _ in cases.values()] + [str(good)]
    out_json = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "tigas_core.cli", "score", *paths, "--weights", str(weights_dir), "--json", str(out_json)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # one image scored -> success
    rows = {Path(r["path"]).name: r for r in json.loads(out_json.read_text())["results"]}
    assert "folder.jpg: folder contains no image files" in proc.stderr  # a folder is expanded, not scored
    for name, (_, reason) in cases.items():
        if name == "folder.jpg":
            continue
        assert reason in rows[name]["error"], (name, rows[name]["error"])
        assert f"ERROR  {cases[name][0]}" in proc.stdout
    assert rows["good.png"]["error"] == "" and 0 < rows["good.png"]["score"] < 1


def test_iter_image_files_is_sorted_filters_and_skips_hidden(tmp_path, make_image):
    make_image("b.png"), make_image("a.jpg"), make_image("sub/c.PNG"), make_image(".hidden/d.png")
    (tmp_path / "notes.txt").write_text("x")
    names = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert names == ["a.jpg", "b.png", "sub/c.PNG"]
    assert [p.name for p in iter_image_files(tmp_path, recursive=False)] == ["a.jpg", "b.png"]
    (tmp_path / "sub" / "vector.svg").write_text("<svg/>")
    (tmp_path / ".hidden" / "notes.txt").write_text("x")
    images, skipped = list_folder(tmp_path)
    assert images == list(iter_image_files(tmp_path)) and skipped == {".txt": 1, ".svg": 1}
    assert list_folder(tmp_path, recursive=False)[1] == {".txt": 1}
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")  # a broken link is listed, to be reported, not dropped
    assert "gone.png" in [p.name for p in iter_image_files(tmp_path)]
    with pytest.raises(TIGASInputError, match="file not found"):
        load_image(tmp_path / "gone.png")
    with pytest.raises(TIGASInputError, match="folder not found"):
        list(iter_image_files(tmp_path / "typo"))
    with pytest.raises(TIGASInputError, match="not a directory"):
        list(iter_image_files(tmp_path / "notes.txt"))


@pytest.mark.parametrize("name", ["phone.heic", "web.avif", "camera.jfif"])
def test_phone_and_web_formats_load_like_png(make_image, name):
    """HEIC (phone cameras) and AVIF (image services) are read, not skipped, and decode close to the PNG."""
    reference = load_image(make_image("reference.png"))
    path = make_image(name, quality=95, **({"format": "JPEG"} if name.endswith(".jfif") else {}))
    assert path in list(iter_image_files(path.parent))
    decoded = load_image(path)
    assert decoded.shape == reference.shape
    difference = decoded - reference
    assert difference.abs().mean() < 0.06  # lossy like a JPEG at quality 95 (0.04 here), but the same picture
    assert difference.mean(dim=(1, 2)).abs().max() < 0.01  # and no colour shift


def test_http_urls_are_downloaded_and_decoded_like_files(served_folder, make_image):
    folder, base = served_folder
    local = make_image("served/photo.png")
    assert torch.equal(load_image(f"{base}/photo.png"), load_image(local))
    with pytest.raises(TIGASInputError, match=r"/missing.png: download failed \(HTTP 404"):
        load_image(f"{base}/missing.png")
    (folder / "notes.txt").write_text("not an image")
    with pytest.raises(TIGASInputError, match="not an image"):
        load_image(f"{base}/notes.txt")
    with pytest.raises(TIGASInputError, match="download failed"):
        load_image("http://127.0.0.1:9/nothing-listens-here.png")


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_integer_tensors_of_every_type_read_as_8_bit_pixels(dtype):
    pixels = torch.randint(0, 128, (3, 40, 48))  # int8 holds 0-127
    assert torch.equal(load_image(pixels.to(dtype)), pixels.float() / 255)
    assert torch.equal(load_image(pixels.numpy().astype(np.int64)), pixels.float() / 255)
    with pytest.raises(TIGASInputError, match=r"integer values span \[-1, .*expected 0-255"):
        load_image((pixels - 1).to(torch.int64))



@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_float_tensors_of_every_width_load_as_float32(dtype):
    pixels = torch.rand(3, 40, 48).to(dtype)  # found by the hypothesis property: a half tensor loaded as half
    image = load_image(pixels)
    assert image.dtype == torch.float32 and torch.equal(image, pixels.float())
    assert load_image(pixels.numpy() if dtype == torch.float64 else pixels).dtype == torch.float32


def test_tensor_shape_errors_say_what_to_do():
    with pytest.raises(TIGASInputError, match=r"channel-last: use \.permute\(2, 0, 1\)"):
        load_image(torch.rand(40, 48, 3))
    with pytest.raises(TIGASInputError, match=r"one image \[3,H,W\].*or a batch \[B,3,H,W\]"):
        load_image(torch.rand(1, 1, 3, 40, 40))
    from tigas_core.io import batch_to_rgb

    with pytest.raises(TIGASInputError, match="empty batch"):
        batch_to_rgb(torch.rand(0, 3, 40, 40), "batch")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width x height pixels (a decompression bomb's header)."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("width, height", [(9000, 9000), (10_000, 10_000), (15_000, 15_000)])
def test_bomb_guard_names_the_file_pixels_and_limit_in_our_words(tmp_path, width, height):
    """81 Mpx (our limit only), 100 Mpx (past Pillow's warning) and 225 Mpx (past Pillow's own refusal)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(width, height))
    with pytest.raises(TIGASInputError) as info:
        load_image(path)
    assert str(info.value).startswith(f"{path}: image too large (")
    assert f"{width * height:,} pixels > 64,000,000; the limit guards against decompression bombs" in info.value.reason
    assert "DOS attack" not in str(info.value)  # Pillow's own words stay out


def test_path_errors_say_what_is_wrong_with_the_path(tmp_path, make_image):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(TIGASInputError, match=r"loop.png: symlink loop \(too many levels of symbolic links\)"):
        load_image(loop)
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")
    with pytest.raises(TIGASInputError, match=r"file not found \(a broken symlink to .*deleted.png\)"):
        load_image(tmp_path / "gone.png")
    good = make_image("good.png")
    with pytest.raises(TIGASInputError, match=r"a part of the path is a file, not a folder"):
        load_image(good / "inside.png")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(TIGASInputError, match="not a regular file"):  # never opened: that would block
        load_image(tmp_path / "pipe.png")
    with pytest.raises(TIGASInputError, match="<empty path>: empty path"):  # not the working folder
        load_image("")
    with pytest.raises(TIGASInputError, match="invalid path"):
        load_image("a\0b.png")


def test_bytes_are_file_contents_never_a_path(make_image):
    path = make_image("photo.png")
    expected = load_image(path)
    for data in (path.read_bytes(), bytearray(path.read_bytes()), memoryview(path.read_bytes())):
        assert torch.equal(load_image(data), expected)
    with pytest.raises(TIGASInputError, match=r"bytes are read as an image file's contents, not as a path; to score the file "
                                              r"'.*photo.png', pass the path as str or Path"):
        load_image(os.fsencode(path))
    with pytest.raises(TIGASInputError, match=r"<bytes: 27 B>: not an image"):
        load_image(b"neither an image nor a path")


def test_an_animation_is_scored_on_its_first_frame_and_says_so(tmp_path):
    frames = [Image.new("RGB", (48, 40), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "still.gif")
    with pytest.warns(TIGASInputWarning, match=r"anim.gif: 3 frames \(animated or multi-page\): scored frame 1 only"):
        image = load_image(tmp_path / "anim.gif")
    assert torch.equal(image, load_image(tmp_path / "still.gif"))
    assert read_image(tmp_path / "still.gif")[1] == ""
    with Image.open(tmp_path / "anim.gif") as animation:
        animation.seek(2)
        assert read_image(animation)[1] == "3 frames (animated or multi-page): scored frame 3 only"


def test_a_threshold_is_a_number_in_0_to_1():
    assert check_threshold("0.25") == 0.25 and check_threshold(1) == 1.0
    for bad, shown in ((5, "got 5.0"), (float("nan"), "got nan"), ("high", "got 'high'"), (None, "got None")):
        with pytest.raises(TIGASInputError, match=re.escape(f"threshold: expected a number in [0, 1], {shown}")):
            check_threshold(bad)


def test_a_gif_with_a_short_frame_header_is_corrupt_not_a_crash(tmp_path):
    """Found by benchmarks/fuzz_decoder.py: Pillow raises struct.error counting the frames of a GIF
    whose second graphic-control block claims 1 byte instead of 4."""
    frames = [Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 48, 3), np.uint8)) for seed in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    data = bytearray(buffer.getvalue())
    second = data.index(b"\x21\xf9\x04", data.index(b"\x21\xf9\x04") + 1)
    data[second + 2] = 1
    (tmp_path / "short.gif").write_bytes(bytes(data))
    with pytest.raises(TIGASInputError, match=r"short.gif: corrupt or truncated image \(unpack_from requires a buffer"):
        load_image(tmp_path / "short.gif")
