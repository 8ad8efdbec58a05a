"""The one home for reading images and turning them into model input.

Everything that touches pixels (the model wrapper, CLI, trainer, app and dashboard) goes through
`load_image` and `preprocess`, so a photo is seen identically at training and at scoring time.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import struct
import urllib.error
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pillow_heif
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

# Phone cameras save HEIC; modern image services serve AVIF (Pillow reads it natively).
pillow_heif.register_heif_opener()

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif",
     ".heic", ".heif", ".ppm", ".pgm", ".pbm"}
)
MIN_SIDE = 32
MAX_PIXELS = 64_000_000
MAX_FILE_BYTES = 100 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 30

# What Pillow raises on damaged data; benchmarks/fuzz_decoder.py found the last two (counting the
# frames of a broken GIF or WebP: IndexError; a GIF cut inside a block: struct.error).
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

# Leading bytes of common formats: a file that starts like an image but will not open is damaged, not foreign.
_IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray | torch.Tensor
BYTES_TYPES = (bytes, bytearray, memoryview)  # always an image file's contents, never a path (see load_image)
FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)  # torch has no min/max for these

# Why a path cannot be read, by errno: a symlink loop or a folder in the way is not "file not found".
_PATH_ERRORS = {
    errno.ENOENT: "file not found",
    errno.ELOOP: "symlink loop (too many levels of symbolic links)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "file not found (a part of the path is a file, not a folder)",
    errno.ENAMETOOLONG: "file name too long",
}


class TIGASInputError(ValueError):
    """An input that cannot be scored; the message names the file and the reason."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class TIGASInputWarning(UserWarning):
    """An input that was scored, with something the user should know (an animation's first frame only)."""


def describe(source: object) -> str:
    """A short name for an input, used in error messages and result tables."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source) or "<empty path>"
    if isinstance(source, BYTES_TYPES):
        return f"<bytes: {memoryview(source).nbytes} B>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    if isinstance(source, np.ndarray):
        return f"<ndarray {tuple(source.shape)}>"
    if isinstance(source, torch.Tensor):
        return f"<tensor {tuple(source.shape)}>"
    return f"<{type(source).__name__}>"


def load_image(source: ImageSource, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Load any supported input as an RGB float tensor [3, H, W] in [0, 1]: a path, an http(s)
    URL (downloaded, at most MAX_FILE_BYTES), the bytes of an image file, a PIL image, an array
    or a tensor (shape rules: docs/input_rules.md).

    Raises TIGASInputError for missing, empty, truncated, non-image, unsupported, too small or
    too large inputs, naming the input (``name`` overrides the name used in messages). An
    animated or multi-page image is scored on its first frame, with a TIGASInputWarning saying so.
    """
    image, note = read_image(source, name=name, max_pixels=max_pixels)
    warn_note(note, name or describe(source))
    return image


def warn_note(note: str, label: str) -> None:
    """A scored input's note (from `read_image`) as a TIGASInputWarning pointing at the user's call
    (the caller's caller); nothing when there is none."""
    if note:
        warnings.warn(TIGASInputWarning(f"{label}: {note}"), stacklevel=3)


def read_image(source: ImageSource, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> tuple[torch.Tensor, str]:
    """`load_image`, with its note (an animation scored on one frame; "" when none) returned instead
    of warned: for callers that report per file, as folder runs and the app do."""
    label = name or describe(source)
    if isinstance(source, torch.Tensor):
        return _check_size(_tensor_to_rgb(source, label), label), ""
    if isinstance(source, np.ndarray):
        return _check_size(_tensor_to_rgb(_array_to_tensor(source, label), label), label), ""
    if isinstance(source, Image.Image):
        return _check_size(_pil_to_tensor(source, label, max_pixels), label), _frames_note(source, label)
    if isinstance(source, BYTES_TYPES):
        return _read_bytes(bytes(source), label, max_pixels)
    if is_url(source):
        return _decode(io.BytesIO(_download(str(source), label)), label, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _read_file(source, label, max_pixels)
    raise TIGASInputError(label, f"unsupported input type {type(source).__name__}")


def _read_bytes(data: bytes, label: str, max_pixels: int) -> tuple[torch.Tensor, str]:
    """Bytes are always an image file's contents, never a path: bytes that only look like a path
    are refused with that said, instead of a bare "not an image"."""
    if not data:
        raise TIGASInputError(label, "empty input (0 bytes)")
    try:
        return _decode(io.BytesIO(data), label, max_pixels)
    except TIGASInputError as exc:
        if _looks_like_path(data):
            raise TIGASInputError(label, f"bytes are read as an image file's contents, not as a path; to score the file "
                                         f"{os.fsdecode(data)!r}, pass the path as str or Path") from exc
        raise


def _looks_like_path(data: bytes) -> bool:
    if len(data) > 4096 or b"\0" in data:
        return False
    return os.path.lexists(data) or Path(os.fsdecode(data)).suffix.lower() in IMAGE_EXTENSIONS


def _read_file(source: str | os.PathLike, label: str, max_pixels: int) -> tuple[torch.Tensor, str]:
    return _decode(io.BytesIO(read_file_bytes(source, label)), label, max_pixels)


def read_file_bytes(source: str | os.PathLike, label: str | None = None) -> bytes:
    """An image file's contents, or a TIGASInputError saying why the path cannot be read (missing,
    a folder, a pipe, empty, too large, no permission). Reading apart from decoding lets a cluster
    read a file on one worker and decode it on another (tigas_core.distributed), with the reasons
    a local run gives."""
    label = label or describe(source)
    path = Path(os.fsdecode(source))
    if not os.fsdecode(source):  # Path("") is ".", the working folder
        raise TIGASInputError(label, "empty path")
    info = _stat(path, label)
    if stat.S_ISDIR(info.st_mode):
        raise TIGASInputError(label, "is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):  # reading a pipe or a device could block or never end
        raise TIGASInputError(label, "not a regular file (a pipe, socket or device)")
    if info.st_size == 0:
        raise TIGASInputError(label, "empty file (0 bytes)")
    check_file_size(info.st_size, MAX_FILE_BYTES, label)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise TIGASInputError(label, _path_reason(exc, path)) from exc


def _stat(path: Path, label: str) -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:
        raise TIGASInputError(label, _path_reason(exc, path)) from exc
    except ValueError as exc:  # a NUL byte in the path
        raise TIGASInputError(label, f"invalid path ({exc})") from exc


def _path_reason(exc: OSError, path: Path) -> str:
    reason = _PATH_ERRORS.get(exc.errno, f"cannot read ({exc.strerror or exc})")
    if exc.errno == errno.ENOENT and path.is_symlink():
        reason += f" (a broken symlink to {os.readlink(path)})"
    return reason


def check_file_size(size: int, limit: int, label: str) -> None:
    """The one per-file size message, for the library's own cap (MAX_FILE_BYTES) and the app's."""
    if size > limit:
        raise TIGASInputError(label, f"file too large ({size / 2**20:.1f} MiB > {limit / 2**20:.3g} MiB per file)")


def check_threshold(value: object) -> float:
    """A decision threshold from a user (CLI option, app API): a number in [0, 1]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TIGASInputError("threshold", f"expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise TIGASInputError("threshold", f"expected a number in [0, 1], got {number}")
    return number


def is_folder(source: object) -> bool:
    """A str or path naming an existing folder; never "" (which Path reads as the working folder)."""
    if not isinstance(source, (str, os.PathLike)) or not os.fsdecode(source):
        return False
    try:
        return Path(os.fsdecode(source)).is_dir()
    except (OSError, ValueError):
        return False


DIGEST_BYTES = 20  # blake2b-160


def file_digest(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """blake2b-160 of a file's bytes: the key of its content (score cache, copies across splits)."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def bytes_digest(data: bytes) -> str:
    """`file_digest` of a file already read: one read serves both its key and its pixels."""
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).hexdigest()


def file_stamp(stat: os.stat_result) -> str:
    """What says a file is unchanged without reading it: size, mtime, and the inode and ctime too,
    since `cp -p`, `rsync -t` and `tar x` give a replaced file its old size and mtime, but no
    program can set ctime."""
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}:{stat.st_ctime_ns}"


def path_text(path: str | os.PathLike) -> str:
    """A path as text that CSV, JSON, Arrow and HTML can all hold. A file name that is not valid
    UTF-8 (bytes of another system's encoding, which Python keeps as lone surrogates) gets those
    bytes as ``\\xNN`` escapes instead of ending the whole run when its row is written."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def is_url(source: object) -> bool:
    """An http(s) address given as a string (a path never starts like one)."""
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def _download(url: str, label: str) -> bytes:
    """The body of ``url``, at most MAX_FILE_BYTES, with errors that say what went wrong."""
    request = urllib.request.Request(url, headers={"User-Agent": "tigas-metric"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read(MAX_FILE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise TIGASInputError(label, f"download failed (HTTP {exc.code} {exc.reason})") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TIGASInputError(label, f"download failed ({reason})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise TIGASInputError(label, f"download too large (> {MAX_FILE_BYTES / 2**20:.0f} MiB)")
    if not data:
        raise TIGASInputError(label, "empty download (0 bytes)")
    return data


def _decode(stream: io.IOBase, label: str, max_pixels: int) -> tuple[torch.Tensor, str]:
    """An encoded image -> (RGB tensor, note), with TIGASInputErrors for what cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data": metadata we do not need
            image = Image.open(stream)
            _check_pixels(image.size, label, max_pixels)
            note = _frames_note(image, label)
            image.load()
    except TIGASInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise TIGASInputError(label, _bomb_reason(exc, max_pixels)) from exc
    except UnidentifiedImageError as exc:
        stream.seek(0)
        if stream.read(8).startswith(_IMAGE_SIGNATURES):
            raise TIGASInputError(label, "corrupt or truncated image (header of a known format, unreadable data)") from exc
        raise TIGASInputError(label, "not an image (unrecognised format)") from exc
    except _DECODER_ERRORS as exc:
        raise _corrupt(label, exc) from exc
    return _check_size(_pil_to_tensor(image, label, max_pixels), label), note


def _corrupt(label: str, exc: BaseException) -> TIGASInputError:
    return TIGASInputError(label, f"corrupt or truncated image ({exc})")


def _check_pixels(size: tuple[int, int], label: str, max_pixels: int) -> None:
    """The decompression-bomb guard: a few KB of file can claim gigapixels, so the size the header
    claims is checked before any pixel is decoded."""
    width, height = size
    if width * height > max_pixels:
        raise TIGASInputError(label, f"image too large ({width}x{height} = {width * height:,} pixels > {max_pixels:,}; "
                                     "the limit guards against decompression bombs)")


def _bomb_reason(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    """Our words for Pillow's own refusal (past twice its limit it stops before we see the size)."""
    limit = min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else max_pixels
    found = re.search(r"\((\d+) pixels\)", str(exc))
    claimed = f"{int(found.group(1)):,} pixels" if found else "more pixels"
    return f"image too large ({claimed} > {limit:,}; the limit guards against decompression bombs)"


def _frames_note(image: Image.Image, label: str) -> str:
    """An animated GIF/PNG/WebP or a multi-page TIFF is scored on one frame: say which."""
    try:
        frames = getattr(image, "n_frames", 1)
    except _DECODER_ERRORS as exc:  # counting frames reads the whole file: damage can show here first
        raise _corrupt(label, exc) from exc
    if frames <= 1 or image.format == "MPO":  # an MPO's extra frames are previews of the same photo
        return ""
    return f"{frames} frames (animated or multi-page): scored frame {image.tell() + 1} only"


def _pil_to_tensor(image: Image.Image, label: str, max_pixels: int) -> torch.Tensor:
    _check_pixels(image.size, label, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data": ignored here anyway
            image = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF blocks should not make a readable image unreadable
        pass
    return torch.from_numpy(_pil_to_rgb_array(image, label)).permute(2, 0, 1).contiguous()


def _pil_to_rgb_array(image: Image.Image, label: str) -> np.ndarray:
    """RGB float32 HxWx3 in [0, 1]; alpha is composited over white, high bit depths are rescaled."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("I", "F"):
        gray = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if gray.max(initial=0) > 255 else 255.0
        return np.repeat(np.clip(gray / scale, 0, 1)[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    try:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (ValueError, OSError) as exc:
        raise TIGASInputError(label, f"unsupported image mode {mode}") from exc


def _array_to_tensor(array: np.ndarray, label: str) -> torch.Tensor:
    """An array -> float tensor, [H,W,C] (as PIL, OpenCV and imageio give) moved to [C,H,W]."""
    if array.dtype.kind in "biu":
        native = array.astype(array.dtype.newbyteorder("="), order="C")  # a writable copy in the byte order torch reads
        data = integer_to_unit(torch.from_numpy(native), label).numpy()
    elif array.dtype.kind == "f":
        data = array.astype(np.float32)
    else:
        raise TIGASInputError(label, f"unsupported array dtype {array.dtype} (use float in [0, 1] or 8/16-bit integers)")
    if data.ndim == 3 and data.shape[-1] in (1, 3, 4) and data.shape[0] not in (1, 3):
        data = np.moveaxis(data, -1, 0)  # HWC -> CHW
    return torch.from_numpy(np.ascontiguousarray(data).reshape(data.shape))  # reshape: keeps a 0-d array 0-d


def _check_tensor_kind(tensor: torch.Tensor, label: str) -> torch.Tensor:
    """Only dense real tensors hold pixels; float8 is widened to float32 (torch lacks ops for it)."""
    if tensor.layout != torch.strided or tensor.is_nested:
        raise TIGASInputError(label, f"unsupported tensor layout {tensor.layout}: pass a dense tensor (.to_dense())")
    if tensor.is_meta:
        raise TIGASInputError(label, "a meta tensor holds no values")
    if tensor.is_quantized:
        raise TIGASInputError(label, "unsupported quantized tensor: pass .dequantize()")
    if tensor.is_complex():
        raise TIGASInputError(label, f"unsupported tensor dtype {tensor.dtype} (use float in [0, 1] or 8/16-bit integers)")
    if tensor.is_floating_point() and tensor.dtype not in FLOAT_TYPES:
        return tensor.to(torch.float32)
    return tensor


def _tensor_to_rgb(tensor: torch.Tensor, label: str) -> torch.Tensor:
    """One image tensor -> float32 RGB [3,H,W], as every other input loads (a half or double
    tensor too; `batch_to_rgb` alone keeps a batch's float type, for the loss path)."""
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise TIGASInputError(label, f"expected one image [3,H,W] (or [H,W]) or a batch [B,3,H,W], got shape {tuple(tensor.shape)}")
    return batch_to_rgb(tensor.unsqueeze(0), label)[0].to(torch.float32)


def integer_to_unit(values: torch.Tensor, label: str) -> torch.Tensor:
    """Integer or bool pixels -> float32 in [0, 1]: uint16 as 16-bit (/ 65535), every other integer
    type as 8-bit (/ 255), so an int64 tensor of 0-255 values scores as its uint8 twin does.
    Values outside what the type's convention allows are refused, never silently rescaled."""
    if values.dtype == torch.bool:
        return values.float()
    scale = 65535.0 if values.dtype == torch.uint16 else 255.0
    if values.numel():
        bounds = values.to(torch.float64) if values.dtype in _WIDE_UNSIGNED else values
        low, high = int(bounds.min()), int(bounds.max())
        if low < 0 or high > scale:
            raise TIGASInputError(label, f"integer values span [{low}, {high}], expected 0-{int(scale)} "
                                         f"({'16-bit' if scale > 255 else '8-bit'} pixels; pass 16-bit data as uint16)")
    return values.float() / scale


def batch_to_rgb(images: torch.Tensor, label: str) -> torch.Tensor:
    """[B,C,H,W] tensor -> RGB float [B,3,H,W] in [0, 1], with the checks a single image gets.

    Integer tensors are rescaled (`integer_to_unit`: uint16 / 65535, other integers / 255); 1 channel is repeated and a
    4th (alpha) is composited over white; NaN/inf and far-out-of-range floats are refused; small
    overshoots are clamped (differentiably: zero gradient beyond). No MIN_SIDE here: a batch is
    the differentiable path of TIGASLoss and TIGASMetric, where a 28 px generator's output is fine.
    """
    images = _check_tensor_kind(images, label)
    if images.ndim != 4:
        raise TIGASInputError(label, f"expected a batch [B,C,H,W], got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise TIGASInputError(label, "empty batch (no images)")
    if images.shape[-2] == 0 or images.shape[-1] == 0:
        raise TIGASInputError(label, "empty image (a side of 0 pixels)")
    if not images.is_floating_point():
        images = integer_to_unit(images, label)
    channels = images.shape[1]
    if channels == 1:
        images = images.expand(-1, 3, -1, -1)
    elif channels == 4:
        alpha = images[:, 3:4]
        images = images[:, :3] * alpha + (1.0 - alpha)
    elif channels != 3:
        hint = "; this looks channel-last: use .permute(2, 0, 1) (or .permute(0, 3, 1, 2) for a batch)" \
            if images.shape[-1] in (1, 3, 4) else ""
        raise TIGASInputError(label, f"expected 1, 3 or 4 channels first ([C,H,W], or [B,C,H,W] for a batch), got {channels}{hint}")
    if not torch.isfinite(images.detach()).all():
        raise TIGASInputError(label, "image contains NaN or infinite values")
    check_unit_range(images, label)
    return images.clamp(0.0, 1.0)


def check_unit_range(images: torch.Tensor, label: str) -> None:
    """Float images are [0, 1]; small overshoots (a generator's output) are clamped later, but values
    far outside mean another convention (0-255, or [-1, 1]) that would score as a washed-out image."""
    low, high = (float(bound) for bound in torch.aminmax(images.detach()))
    if high > 1.5 or low < -0.5:
        hint = "divide a 0-255 image by 255" if high > 1.5 else "map a [-1, 1] image with (x + 1) / 2"
        raise TIGASInputError(label, f"float values span [{low:.3g}, {high:.3g}], expected [0, 1]: {hint}")


def _check_size(tensor: torch.Tensor, label: str) -> torch.Tensor:
    height, width = tensor.shape[-2:]
    if min(height, width) < MIN_SIDE:
        raise TIGASInputError(label, f"image too small ({width}x{height}; both sides must be >= {MIN_SIDE} px)")
    return tensor


def iter_image_files(folder: str | os.PathLike, recursive: bool = True) -> Iterator[Path]:
    """Image files below ``folder`` in a stable (sorted) order; hidden files and folders skipped."""
    yield from list_folder(folder, recursive)[0]


def list_folder(folder: str | os.PathLike, recursive: bool = True) -> tuple[list[Path], Counter[str]]:
    """One walk of ``folder``: its image files (as `iter_image_files` gives them) and, by extension,
    how many other visible files it passes over, so a folder run can say what it left out (a
    user's ``.svg`` or ``.raw`` files) instead of silently scoring fewer files than it holds."""
    images, skipped = [], Counter()
    for path in _visible_files(folder, recursive):
        suffix = path.suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            images.append(path)
        else:
            skipped[suffix or "(no extension)"] += 1
    return sorted(images), skipped


def _visible_files(folder: str | os.PathLike, recursive: bool) -> Iterator[Path]:
    root = Path(folder)
    if not root.exists():
        raise TIGASInputError(os.fspath(folder), "folder not found")
    if not root.is_dir():
        raise TIGASInputError(os.fspath(folder), "not a directory")
    pattern = root.rglob("*") if recursive else root.glob("*")
    return (
        p for p in pattern
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
        and (p.is_file() or (p.is_symlink() and not p.exists()))  # a broken link gets its row ("file not found")
    )


def resize_shorter_side(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize [B,3,H,W] so the shorter side equals ``size``, keeping the aspect ratio (differentiable)."""
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    if scale == 1.0:
        return images
    new_size = (max(size, round(height * scale)), max(size, round(width * scale)))
    return F.interpolate(images, size=new_size, mode="bilinear", align_corners=False, antialias=scale < 1.0)


def crop(images: torch.Tensor, size: int, top: int | None = None, left: int | None = None) -> torch.Tensor:
    """A size x size crop; centred unless ``top``/``left`` are given."""
    height, width = images.shape[-2:]
    top = (height - size) // 2 if top is None else top
    left = (width - size) // 2 if left is None else left
    return images[..., top : top + size, left : left + size]


def at_least(images: torch.Tensor, size: int) -> torch.Tensor:
    """[B,3,H,W] with the shorter side raised to ``size`` when it is smaller; larger images untouched."""
    return resize_shorter_side(images, size) if min(images.shape[-2:]) < size else images


def preprocess(images: torch.Tensor, img_size: int) -> torch.Tensor:
    """Model input from [3,H,W] or [B,3,H,W] in [0,1]: an img_size square from the centre, at the
    image's own pixel scale.

    Only an image whose shorter side is below img_size is resized (up, to img_size). Why: a
    generator's traces live in single pixels and vanish when a large image is squashed to the
    model's size (the 64 px view of TIGAS 1 left colour and content to learn from). Used for
    training (after augmentation), validation and inference alike; differentiable, so it sits
    inside the graph when TIGAS is a loss.
    """
    batched = images if images.ndim == 4 else images.unsqueeze(0)
    out = crop(at_least(batched, img_size), img_size)
    return out if images.ndim == 4 else out[0]


GREYSCALE_SPREAD = 2 / 255  # mean spread of a pixel's channels below which an image has no colour


def is_greyscale(images: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] -> [B] bool: images without colour, whose channels differ by less than
    GREYSCALE_SPREAD on average (greyscale files, and greyscale content saved as RGB or JPEG).
    The score calibrates them apart (`TIGASConfig.greyscale_calibration`)."""
    return (images.amax(dim=1) - images.amin(dim=1)).mean(dim=(1, 2)) < GREYSCALE_SPREAD


VIEW_MODES = ("single", "mirror", "jitter", "grid")
JITTER_SHIFT = 2  # px of the model's view
VIEW_DESCRIPTIONS = {
    "single": "one centre view",
    "mirror": "each image averaged with its mirror",
    "jitter": "each image averaged over 18 shifted views of it and its mirror",
    "grid": "each image averaged over 4 views covering up to twice the view size",
}
DEFAULT_VIEWS = "single"  # what every face (API, CLI, app, dashboard) scores with unless told otherwise


def setting_notes(views: str, precision: str) -> list[str]:
    """A scorer's settings that differ from the defaults, in words (the app, the dashboard and the
    evaluation report name them beside the weights): scores made otherwise are not comparable."""
    return ([] if views == DEFAULT_VIEWS else [VIEW_DESCRIPTIONS[views]]) + ([] if precision == "fp32" else [f"trunk in {precision}"])


def model_views(images: torch.Tensor, img_size: int, mode: str = DEFAULT_VIEWS) -> torch.Tensor:
    """The views a TIGAS score averages over, [B,V,3,S,S] from [B,3,H,W] (differentiable).

    ``single``: the `preprocess` view (V=1). ``mirror``: that view of the image and of its mirror
    (V=2). ``jitter``: the image and its mirror, each cropped at the centre and at shifts of
    JITTER_SHIFT px in either axis (V=18), at the image's pixel scale (an image too small for the
    shifts is first resized to img_size + 2*JITTER_SHIFT). Both modes that mirror are exactly
    invariant to mirroring the input, as the image and its mirror give the same set of views.
    ``grid``: the four corner views of the centre region of at most 2*img_size square (V=4), so a
    score reads up to four times the pixels of ``single``: a web-sized image (256 px shorter side)
    whole, and more of a large photo (out of fold, better on generators never seen: docs/training.md).
    """
    if mode not in VIEW_MODES:
        raise ValueError(f"unknown views {mode!r}; choose from {', '.join(VIEW_MODES)}")
    if mode == "single":
        return preprocess(images, img_size).unsqueeze(1)
    if mode == "grid":
        return _grid_views(at_least(images, img_size), img_size)
    sources = (images, images.flip(-1))
    if mode == "mirror":
        return torch.stack([preprocess(source, img_size) for source in sources], dim=1)
    shifts = [(0, 0)] + [(dy, dx) for dy in (-JITTER_SHIFT, 0, JITTER_SHIFT) for dx in (-JITTER_SHIFT, 0, JITTER_SHIFT)
                         if (dy, dx) != (0, 0)]
    views = []
    for source in sources:
        resized = at_least(source, img_size + 2 * JITTER_SHIFT)
        height, width = resized.shape[-2:]
        top, left = (height - img_size) // 2, (width - img_size) // 2
        views += [crop(resized, img_size, top + dy, left + dx) for dy, dx in shifts]
    return torch.stack(views, dim=1)


def _grid_views(images: torch.Tensor, img_size: int) -> torch.Tensor:
    """[B,3,H,W] (both sides at least img_size) -> [B,4,3,S,S]: the corner views of the centre
    region of at most 2*img_size on each side (views overlap where the image is smaller)."""
    height, width = images.shape[-2:]
    region_height, region_width = min(height, 2 * img_size), min(width, 2 * img_size)
    top, left = (height - region_height) // 2, (width - region_width) // 2
    return torch.stack([crop(images, img_size, top + dy, left + dx)
                        for dy in (0, region_height - img_size) for dx in (0, region_width - img_size)], dim=1)


def to_uint8_image(image: torch.Tensor) -> np.ndarray:
    """[3,H,W] float in [0,1] -> HxWx3 uint8, for display and saving."""
    return (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
