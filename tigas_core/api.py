"""TIGAS: the user-facing scorer. Wraps a frozen TIGASModel with loading, batching and explanations."""
from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from tigas_core import spectral
from tigas_core.explanation import Explanation
from tigas_core.hub import BUNDLED_WEIGHTS, resolve_weights, weights_from_legacy
from tigas_core.io import (
    DEFAULT_VIEWS,
    VIEW_MODES,
    ImageSource,
    TIGASInputError,
    batch_to_rgb,
    describe,
    is_folder,
    is_greyscale,
    iter_image_files,
    load_image,
    model_views,
    path_text,
    preprocess,
    read_image,
    to_uint8_image,
    warn_note,
)
from tigas_core.model import TIGASModel
from tigas_core.model.perceptual_branch import trunk_precision
from tigas_core.precision import resolve_precision
from tigas_core.results import RESULT_COLUMNS, breakdown, empty_row, output_numbers, verdict

logger = logging.getLogger("tigas")
# A scored file's note when it has no colour: the read-out reads colour, so greyscale images are
# calibrated apart and ranked less surely (docs/training.md, "Greyscale images").
GREYSCALE_NOTE = "greyscale: calibrated on greyscale images, which it ranks less surely than colour ones"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU. A named device is checked here, so a typo or a
    GPU that is not there fails with one clear line, not deep inside the first tensor move."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {str(device)!r}: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= available:
            raise ValueError(f"device {str(device)!r}: this machine has {available} usable CUDA device(s); use cpu or auto")
    return resolved


def average_over_views(out: dict, n_views: int) -> dict:
    """Model outputs for [B*V] views -> [B], averaged where they judge the image: logits (the scores
    are their sigmoids again), branch weights and features. The spectrum and radial profile are
    those of each image's first view, the one `model_views` puts at the centre, unmirrored."""
    def mean(value: torch.Tensor) -> torch.Tensor:
        return value.unflatten(0, (-1, n_views)).mean(1)

    merged = {key: value[::n_views] for key, value in out.items() if isinstance(value, torch.Tensor)}
    for key in ("logit", "raw_logit", "logits", "branch_weights"):
        merged[key] = mean(out[key])
    for key in ("component_logits", "features"):
        merged[key] = {name: mean(value) for name, value in out[key].items()}
    merged["score"] = torch.sigmoid(merged["logit"])
    merged["components"] = {name: torch.sigmoid(value) for name, value in merged["component_logits"].items()}
    return merged


class TIGAS:
    """Score images for realism: 1 = looks like a real photo, 0 = looks generated.

    ``weights`` names the weights, the one way for every face (`tigas_core.hub.resolve_weights`):
    None or ``"assets"`` for the bundled ones, a folder or file path, or a Hub repo
    ``"owner/name@revision"`` (through the Hugging Face cache, honouring HF_HUB_OFFLINE).
    ``checkpoint_path``, ``auto_download``, ``repo_id`` and ``revision`` still work, deprecated.
    Calls on tensors keep the autograd graph, so TIGAS works as a loss; file scoring runs without it.
    ``views`` (see `tigas_core.io.model_views`): "single" scores one centre view at the image's
    pixel scale (the default of every face); "mirror" averages the image and its mirror (2x the
    cost), "jitter" 18 slightly shifted views of both (18x), "grid" the four corner views of the
    centre 448 px (4x: reads four times the pixels; the most accurate), in logits and features.
    ``precision``: "fp32" (the default: the same scores on every machine), "bf16" (the frozen trunk
    computes in bfloat16, `trunk_precision`: about 1.4-1.5x the images per second on a CPU with
    AVX512-BF16 or AMX, scores within about 0.004 of fp32's on average; elsewhere emulated, slower,
    with a warning) or "auto" (bf16 where it is native); ``self.precision`` is the resolved one.

    Why TIGAS is not an ``nn.Module`` (as lpips' LPIPS and pyiqa's InferenceModel are): it is the
    scorer of files, URLs, folders, PIL images and arrays, answering floats, tensors and
    DataFrames, and never trains; the network is ``self.model`` (a `TIGASModel`, an ``nn.Module``).
    What a Module would give, the faces already have: `TIGASMetric` registers that network as its
    child module (``metric.to("cuda")`` moves it), `device` is read from its weights so images
    follow it, and `TIGASLoss` keeps it frozen in eval mode; a Module would add ``.train()``,
    trainable ``.parameters()`` and a ``state_dict`` whose keys differ from the weights files' to
    an object whose network must stay frozen.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "auto",
        img_size: int | None = None,
        model: TIGASModel | None = None,
        views: str = DEFAULT_VIEWS,
        precision: str = "fp32",
        checkpoint_path: str | os.PathLike | None = None,
        auto_download: bool = False,
        repo_id: str | None = None,
        revision: str | None = None,
    ):
        if views not in VIEW_MODES:
            raise ValueError(f"unknown views {views!r}; choose from {', '.join(VIEW_MODES)}")
        device = resolve_device(device)
        precision = resolve_precision(device, precision)
        weights, hub_fallback = weights_from_legacy(weights, checkpoint_path, auto_download, repo_id, revision)
        if model is None:
            model, self.weights_source = resolve_weights(weights, hub_fallback)
        else:
            self.weights_source = "model passed in"
        self.model = model.to(device).eval().requires_grad_(False)
        if device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)  # ~25% faster convs on CPU
        self.config = self.model.config
        self.img_size = img_size or self.config.img_size
        self.threshold = self.config.threshold
        self.views = views
        self.precision = precision

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike = BUNDLED_WEIGHTS, **options: Any) -> TIGAS:
        """``TIGAS.from_pretrained("owner/name@revision")`` (the timm / Hugging Face spelling of
        ``TIGAS(weights=...)``); ``options`` as for `TIGAS` (device, views, precision, img_size)."""
        return cls(weights, **options)

    @property
    def device(self) -> torch.device:
        """Where the model is, read from its weights: moving the model (e.g. with a TIGASMetric's
        ``.to("cuda")``) moves where images are sent."""
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ tensors
    def make_views(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [0,1] -> the [B,V,3,S,S] views this scorer averages over (differentiable)."""
        return model_views(images.to(torch.float32), self.img_size, self.views)

    def forward_views(self, views: torch.Tensor) -> dict:
        """Model outputs for [B,V,3,S,S] views (from `make_views`), averaged over V."""
        n_views = views.shape[1]
        x = views.to(self.device, torch.float32).flatten(0, 1)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with trunk_precision(self.precision):
            out = self.model(x)
        return out if n_views == 1 else average_over_views(out, n_views)

    def forward_tensor(self, images: torch.Tensor) -> dict:
        """Model outputs for [B,3,H,W] in [0,1], preprocessed exactly like files (differentiable)."""
        return self.forward_views(self.make_views(images.to(self.device)))

    def __call__(self, images: Any, return_features: bool = False):
        """Score a path, list of paths, folder, PIL image, ndarray or tensor ([3,H,W] or [B,3,H,W]).

        One image -> float (a 0-d tensor if it requires grad); several -> tensor [B,1].
        With ``return_features=True`` -> dict(score, features, components, branch_weights).
        """
        views, single = self._as_views(images)
        grad = views.requires_grad
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            out = self.forward_views(views)
        if return_features:
            return {k: out[k] for k in ("score", "features", "components", "branch_weights")}
        score = out["score"]
        if single:
            return score[0, 0] if grad else float(score[0, 0])
        return score

    def _as_views(self, images: Any) -> tuple[torch.Tensor, bool]:
        """[B,V,3,S,S] views of any accepted input, and whether it was one image."""
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            return self.make_views(batch_to_rgb(images, describe(images))), False
        if is_folder(images):
            paths = list(iter_image_files(images))
            if not paths:
                raise TIGASInputError(os.fspath(images), "folder contains no image files")
            return self._load_views(paths), False
        if isinstance(images, np.ndarray) and images.ndim == 4:
            if not len(images):
                raise TIGASInputError(describe(images), "empty batch (no images)")
            return self._load_views(list(images)), False  # [B,H,W,C] or [B,C,H,W]
        if isinstance(images, (list, tuple)):
            if not images:
                raise TIGASInputError("<empty list>", "no images given")
            return self._load_views(images), False
        return self.make_views(load_image(images).unsqueeze(0)), True

    def _load_views(self, sources: Sequence[ImageSource]) -> torch.Tensor:
        """Model-size views of every source; each original is dropped once its views are made."""
        return torch.cat([self.make_views(load_image(source).unsqueeze(0)) for source in sources])

    # ------------------------------------------------------------------ files
    def iter_file_results(self, paths: Sequence[str | os.PathLike], batch_size: int = 16, workers: int = 2,
                          with_features: bool = False) -> Iterator[dict]:
        """One result row per path, in order, decoding the next batch while the model runs.

        With ``with_features`` a scored row also carries ``features`` (fused [D]),
        ``spectral_profile`` [bins] and ``spectrum_grid`` [S,S] from the same forward pass.

        Unreadable files yield a row with NaN scores and the reason in ``error``; nothing aborts.
        A scored file's ``note`` says what to read its score with (an animation's first frame).
        Memory stays constant: at most ``workers`` batches are decoded ahead of the model.
        """
        def decode(chunk: list) -> list:
            return [self.load_views(p) for p in chunk]

        chunks = iter([list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)])
        workers = max(1, workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # A bounded queue of `workers` chunks (pool.map would decode the whole folder ahead).
            pending = deque((chunk, pool.submit(decode, chunk)) for chunk in itertools.islice(chunks, workers))
            while pending:
                chunk, decoded = pending.popleft()
                following = next(chunks, None)
                if following is not None:
                    pending.append((following, pool.submit(decode, following)))
                yield from self.score_loaded(chunk, decoded.result(), with_features)

    def load_views(self, source: ImageSource, name: str | None = None) -> tuple[torch.Tensor | None, str, str]:
        """(views [V,3,S,S], "", note) of one file (a path, or its bytes named ``name``), or (None,
        reason, "") when it cannot be read: never raises, so one file cannot end a run."""
        try:
            image, note = read_image(source, name=name)
            views = self.make_views(image.unsqueeze(0))[0]
            return views, "", self._with_greyscale_note(views, note)
        except TIGASInputError as exc:
            return None, exc.reason, ""
        except Exception as exc:  # a file must never take the whole run down
            return None, f"unreadable ({type(exc).__name__}: {exc})", ""

    def _with_greyscale_note(self, views: torch.Tensor, note: str) -> str:
        """``note``, and a word when the image has no colour and the weights calibrate such images apart."""
        if self.config.greyscale_calibration is None or not bool(is_greyscale(views).all()):
            return note
        return "; ".join(filter(None, [note, GREYSCALE_NOTE]))

    def score_loaded(self, chunk: list, loaded: list, with_features: bool = False) -> Iterator[dict]:
        """One result row (RESULT_COLUMNS) per path of ``chunk``, from its `load_views` in ``loaded``:
        the readable ones in one forward pass, the others with their reason."""
        good = [i for i, (tensor, _, _) in enumerate(loaded) if tensor is not None]
        outputs: dict[int, dict] = {}
        if good:
            with torch.inference_mode():
                out = self.forward_views(torch.stack([loaded[i][0] for i in good]))
            for row, i in enumerate(good):
                result = output_numbers(out, row)
                if with_features:
                    result["features"] = out["features"]["fused"][row].float().cpu().numpy()
                    result["spectral_profile"] = out["spectral_profile"][row].float().cpu().numpy()
                    result["spectrum_grid"] = out["spectrum_grid"][row].float().cpu().numpy()
                outputs[i] = result
        for i, path in enumerate(chunk):
            row = {**empty_row(path_text(path), error=loaded[i][1], note=loaded[i][2]), **outputs.get(i, {})}
            row["verdict"] = verdict(row["score"], self.threshold)
            yield row

    def score_files(self, paths: Iterable[str | os.PathLike], batch_size: int = 16, progress: bool = False,
                    workers: int = 2) -> pd.DataFrame:
        """DataFrame with one row per file (columns RESULT_COLUMNS); bad files get an ``error``."""
        paths = list(paths)
        rows = self.iter_file_results(paths, batch_size, workers)
        if progress:
            from tqdm.auto import tqdm

            rows = tqdm(rows, total=len(paths), unit="img", desc="TIGAS")
        return pd.DataFrame(list(rows), columns=RESULT_COLUMNS)

    def compute_directory(self, path: str | os.PathLike, recursive: bool = True, batch_size: int = 16,
                          progress: bool = True, workers: int = 2) -> pd.DataFrame:
        """Score every image file below ``path``; see `score_files`."""
        return self.score_files(iter_image_files(path, recursive), batch_size, progress, workers)

    def features_for_files(self, paths: Iterable[str | os.PathLike], batch_size: int = 16) -> tuple[np.ndarray, pd.DataFrame]:
        """Fused TIGAS features [N_ok, D] of the readable files, and the full result table."""
        rows = list(self.iter_file_results(list(paths), batch_size, with_features=True))
        features = [row.pop("features") for row in rows if "features" in row]
        table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        return (np.stack(features) if features else np.zeros((0, self.config.feature_dim), np.float32)), table

    # ------------------------------------------------------------------ explanations
    def explain(self, image: ImageSource) -> Explanation:
        """Score, branch breakdown, spectrum, radial profile vs the real reference, and saliency.

        The score, components and weights are this scorer's (averaged over its views); the
        spectrum, profile and saliency are those of the centre view, the picture the user sees.
        """
        original, note = read_image(image)
        warn_note(note, describe(image))
        view = preprocess(original, self.img_size).unsqueeze(0).to(self.device)
        view.requires_grad_(True)
        with torch.enable_grad():
            centre = self.forward_views(view.unsqueeze(1))
            # Gradient of "fakeness": large where editing pixels would move the score most.
            (-centre["logit"].sum()).backward()
        if self.views == "single":
            out = centre
        else:
            with torch.no_grad():
                out = self.forward_tensor(original.unsqueeze(0))
        saliency = view.grad.abs().amax(dim=1, keepdim=True)
        saliency = F.avg_pool2d(saliency, 9, stride=1, padding=4, count_include_pad=False)[0, 0]
        saliency = (saliency / (saliency.max() + 1e-12)).cpu().numpy()
        numbers = output_numbers(out, 0)
        score = numbers["score"]
        with torch.no_grad():
            spectrum = spectral.log_spectrum(view.detach())[0].cpu().numpy()
        bins = self.config.radial_bins
        return Explanation(
            score=score,
            verdict=verdict(score, self.threshold),
            **breakdown(numbers),
            spectrum=spectrum,
            radial_profile=centre["spectral_profile"][0].detach().cpu().numpy(),
            reference_profile=self.model.reference_profile.detach().cpu().numpy(),
            frequencies=spectral.radial_frequencies(bins).numpy(),
            saliency=saliency,
            image=to_uint8_image(view.detach()[0]),
            image_size=(int(original.shape[-1]), int(original.shape[-2])),
            note=note,
        )

    def __repr__(self) -> str:
        views = "" if self.views == "single" else f", views={self.views!r}"
        precision = "" if self.precision == "fp32" else f", precision={self.precision!r}"
        return f"TIGAS(weights={self.weights_source!r}, device={self.device}, img_size={self.img_size}{views}{precision})"
