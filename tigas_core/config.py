"""TIGASConfig: every number that defines a TIGAS model, stored next to its weights as config.json."""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class TIGASConfig:
    """Architecture, input size and calibration of one TIGAS model.

    Kept in a dataclass (not kwargs scattered over modules) so that the weights file and the
    code that rebuilds the network always agree on shapes.
    """

    # Side of the square view the model reads; views keep the image's own pixel scale
    # (`tigas_core.io.model_views`), resizing only images smaller than this.
    img_size: int = 224
    # ImageNet-pretrained trunk of the perceptual branch (`tigas_core.model.backbone.BACKBONES`),
    # the feature indices it is read at (0..4 = strides 2..32), and whether training updates it.
    backbone: str = "efficientnet_lite1"
    backbone_taps: tuple[int, ...] = (1, 2, 3, 4)
    train_trunk: bool = False
    # Positions in backbone_taps whose channel correlations the read-out reads beside every tap's
    # channel means and standard deviations (`perceptual_branch.tap_statistics`).
    readout_correlations: tuple[int, ...] = (0, 1, 2)
    # Measurement vectors of the spectral branch (`SpectralBranch.vector_size`) the read-out reads, as
    # plain columns beside the trunk's statistics (`tigas.readout_input`).
    readout_spectral: tuple[str, ...] = ("profile", "dct", "artefacts", "rgb_profiles", "chroma_profiles", "coherence", "axis_shares")
    adapter_channels: int = 48
    feature_dim: int = 128
    num_heads: int = 4
    num_prototypes: int = 16
    radial_bins: int = 64
    dct_block: int = 8
    spectrum_size: int = 64
    dropout: float = 0.1
    # Calibration of the regression logit: score = sigmoid((logit - calibration_bias) / calibration_temperature).
    calibration_temperature: float = 1.0
    calibration_bias: float = 0.0
    # (temperature, bias) for greyscale images (`io.is_greyscale`), fitted on greyscale copies: the
    # read-out reads colour, and without it a generated image's logit sits near a photo's
    # (docs/training.md). None: greyscale images are calibrated like the rest (weights before 2.7).
    greyscale_calibration: tuple[float, float] | None = None
    # Decision threshold on the calibrated score (0.5 = even odds once calibrated).
    threshold: float = 0.5
    model_type: str = "tigas"
    version: str = "2.7"

    def __post_init__(self) -> None:
        self.backbone_taps = tuple(int(t) for t in self.backbone_taps)  # JSON gives a list
        self.readout_correlations = tuple(int(t) for t in self.readout_correlations)
        self.readout_spectral = tuple(str(name) for name in self.readout_spectral)
        if self.greyscale_calibration is not None:
            temperature, bias = (float(v) for v in self.greyscale_calibration)
            self.greyscale_calibration = (temperature, bias)
        if any(not 0 <= t < len(self.backbone_taps) for t in self.readout_correlations):
            raise ValueError(f"readout_correlations {self.readout_correlations} must be positions in backbone_taps "
                             f"(0..{len(self.backbone_taps) - 1})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TIGASConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        # weights saved before 2.2 read no correlations, before 2.4 no spectral measurements
        values = {"readout_correlations": (), "readout_spectral": ()} | values
        return cls(**{k: v for k, v in values.items() if k in known})

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TIGASConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that a crash leaves either the old file or the new one, never half of one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # name the file the user asked for, not our hidden temporary beside it
        raise OSError(exc.errno, f"cannot write {path} ({exc.strerror})") from exc
    make_readable(Path(tmp))  # mkstemp makes 0600; the result should read like any other file
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_readable(path: Path) -> None:
    """Give a file written through a private temporary the mode a plain open() would have (umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
