"""The network itself: shapes, ranges, determinism, batch consistency, differentiability, spectra."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from tigas_core import spectral
from tigas_core.config import TIGASConfig
from tigas_core.io import is_greyscale
from tigas_core.model import BRANCHES, TIGASModel, create_tigas_model
from tigas_core.model.perceptual_branch import tap_statistics_size


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 100), (97, 61)])
def test_outputs_have_documented_shapes_and_ranges(small_model, size):
    with torch.no_grad():
        out = small_model(torch.rand(3, 3, *size))
    assert out["score"].shape == (3, 1)
    assert ((out["score"] > 0) & (out["score"] < 1)).all()
    assert out["logits"].shape == (3, 2)
    assert torch.allclose(out["score"], torch.sigmoid(out["logit"]))
    assert set(out["components"]) == set(BRANCHES)
    for value in out["components"].values():
        assert value.shape == (3, 1) and ((value > 0) & (value < 1)).all()
    assert out["branch_weights"].shape == (3, 3)
    assert torch.allclose(out["branch_weights"].sum(dim=1), torch.ones(3), atol=1e-5)
    assert set(out["features"]) == {*BRANCHES, "fused"}
    assert all(f.shape == (3, small_model.config.feature_dim) for f in out["features"].values())
    assert out["spectral_profile"].shape == (3, small_model.config.radial_bins)


def test_default_config_matches_the_readme():
    config = TIGASConfig()
    assert (config.img_size, config.backbone, config.backbone_taps, config.feature_dim) == (224, "efficientnet_lite1", (1, 2, 3, 4), 128)
    assert not config.train_trunk


def test_eval_is_deterministic_and_batch_equals_single_calls(small_model):
    images = torch.rand(5, 3, 64, 64)
    with torch.no_grad():
        batch = small_model(images)["score"]
        again = small_model(images)["score"]
        singles = torch.cat([small_model(images[i : i + 1])["score"] for i in range(5)])
    assert torch.equal(batch, again)
    assert torch.allclose(batch, singles, atol=1e-5)


def test_scores_depend_on_the_image(small_model):
    with torch.no_grad():
        scores = small_model(torch.stack([torch.rand(3, 64, 64), torch.zeros(3, 64, 64) + 0.5, torch.rand(3, 64, 64) ** 4]))["score"]
    assert scores.std() > 1e-4


def test_too_small_and_wrong_shape_inputs_are_rejected(small_model):
    with pytest.raises(ValueError, match="at least 32x32"):
        small_model(torch.rand(1, 3, 31, 64))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        small_model(torch.rand(1, 4, 64, 64))


def test_calibration_changes_scores_but_not_their_order(small_config):
    torch.manual_seed(1)
    model = create_tigas_model(small_config).eval()
    images = torch.rand(6, 3, 64, 64)
    with torch.no_grad():
        before = model(images)["score"].flatten()
        model.config.calibration_temperature, model.config.calibration_bias = 0.5, 0.2
        after = model(images)["score"].flatten()
    assert not torch.allclose(before, after)
    assert torch.equal(before.argsort(), after.argsort())


def test_greyscale_images_take_the_greyscale_calibration_and_colour_ones_the_other(small_config):
    torch.manual_seed(1)
    model = create_tigas_model(small_config).eval()
    colour = torch.rand(2, 3, 64, 64)
    grey = colour.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    images = torch.cat([colour, grey, (grey + 0.5 / 255 * torch.randn(2, 3, 64, 64)).clamp(0, 1)])  # JPEG-like chroma noise
    assert is_greyscale(images).tolist() == [False, False, True, True, True, True]
    with torch.no_grad():
        without = model(images)
        model.config.greyscale_calibration = (2.0, 1.5)
        with_grey = model(images)
    raw = with_grey["raw_logit"]
    assert torch.equal(with_grey["logit"][:2], without["logit"][:2])
    assert torch.allclose(with_grey["logit"][2:], (raw[2:] - 1.5) / 2.0)
    colour_calibrated = (raw[2:] - model.config.calibration_bias) / model.config.calibration_temperature
    assert torch.allclose(without["logit"][2:], colour_calibrated)  # no greyscale calibration: calibrated like the rest


def test_greyscale_calibration_travels_in_the_config(tmp_path):
    config = TIGASConfig(greyscale_calibration=[1.1, 3.5])  # as JSON gives it
    config.save(tmp_path / "config.json")
    assert TIGASConfig.load(tmp_path / "config.json").greyscale_calibration == (1.1, 3.5)
    assert TIGASConfig.from_dict({"version": "2.6"}).greyscale_calibration is None  # weights before 2.7


def test_gradients_reach_a_generator_through_frozen_tigas(tigas):
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(8, 3 * 48 * 48), nn.Sigmoid())
    images = generator(torch.randn(4, 8)).view(4, 3, 48, 48)
    score = tigas(images)
    assert score.shape == (4, 1) and score.requires_grad
    (1 - score.mean()).backward()
    grads = [p.grad for p in generator.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in tigas.model.parameters()), "TIGAS must stay frozen"


def test_radial_profile_tells_white_noise_from_natural_falloff():
    white = torch.rand(1, 3, 128, 128)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 136, 136), 9, stride=1)
    slope_white = spectral.artefact_features(spectral.power_spectrum(white))[0, 2]
    slope_smooth = spectral.artefact_features(spectral.power_spectrum(smooth))[0, 2]
    assert abs(float(slope_white)) < 0.5  # flat spectrum
    assert float(slope_smooth) < -1.5  # steep fall-off, like photos


def test_periodic_upsampling_artefacts_raise_the_peak_feature():
    torch.manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 72, 72), 9, stride=1)
    clean = torch.nn.functional.interpolate(base, scale_factor=2, mode="bilinear", align_corners=False)
    checker = clean.clone()
    checker[..., ::2, ::2] += 0.05  # the grid a stride-2 transposed convolution leaves behind
    peak_clean = spectral.artefact_features(spectral.power_spectrum(clean))[0, 3]
    peak_checker = spectral.artefact_features(spectral.power_spectrum(checker))[0, 3]
    assert float(peak_checker) > float(peak_clean) + 1.0


def test_block_dct_is_orthonormal_and_natural_reference_falls():
    dct = spectral._dct_matrix(8)
    assert torch.allclose(dct @ dct.T, torch.eye(8), atol=1e-5)
    reference = spectral.natural_reference_profile(64)
    assert reference[0] > reference[32] > reference[-1]
    assert math.isclose(float(reference[32]), 0.0, abs_tol=1e-6)


def test_radial_profile_has_no_empty_bins_on_small_images():
    profile = spectral.radial_profile(spectral.power_spectrum(torch.rand(2, 3, 32, 32)), 64)
    assert profile.shape == (2, 64) and (profile > -9).all()  # an empty bin would read log10(1e-10)


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 63)])
def test_half_plane_radial_means_equal_the_full_planes(size):
    """The colour spectra average rfft2 half planes; weighted for the mirrored frequencies they give
    the full plane's radial means (`radial_profile`'s bins) at even and odd sizes."""
    images = torch.rand(2, 3, *size)
    green = images[:, 1:2].expand(-1, 3, -1, -1)  # a grey image whose luma is the green plane
    full = spectral.radial_profile(spectral.power_spectrum(green), 64)
    half = spectral.colour_spectra(images)
    from_half = torch.log10(spectral.radial_means(half[:, 1].real.square() + half[:, 1].imag.square(), *size, 64) + 1e-10)
    assert torch.allclose(from_half, full, atol=1e-4)


def test_colour_spectra_see_colour_detail_that_luma_does_not():
    torch.manual_seed(0)
    grey = torch.rand(1, 1, 64, 64).expand(-1, 3, -1, -1)
    tinted = grey.clone()
    tinted[:, 2] = torch.rand(64, 64)  # blue detail of its own
    for name, fn in (("coherence", spectral.channel_coherence), ("chroma", spectral.chroma_profiles)):
        grey_value, tinted_value = (fn(spectral.colour_spectra(x), 64, 64) for x in (grey, tinted))
        assert grey_value.shape == tinted_value.shape, name
    coherence = [spectral.channel_coherence(spectral.colour_spectra(x), 64, 64) for x in (grey, tinted)]
    assert torch.allclose(coherence[0], torch.ones_like(coherence[0]), atol=1e-4)  # planes move together
    assert float(coherence[1][0, : spectral.COLOUR_BANDS].mean()) < 0.5  # blue's detail is its own
    chroma = [spectral.chroma_profiles(spectral.colour_spectra(x), 64, 64) for x in (grey, tinted)]
    assert float(chroma[0].max()) < -5 < float(chroma[1][0, :64].min())  # no colour detail, then plenty


def test_axis_shares_find_power_on_the_axes():
    torch.manual_seed(0)
    noise = torch.rand(1, 3, 64, 64)
    stripes = noise * 0.1 + (torch.arange(64) % 4 < 2).float().view(1, 1, 1, 64)  # a vertical grid
    axis_noise, axis_stripes = (spectral.axis_shares(spectral.colour_spectra(x), 64, 64)[0, : spectral.COLOUR_BANDS]
                                for x in (noise, stripes))
    band = spectral.COLOUR_BANDS // 2  # the stripes' frequency: half of Nyquist
    assert float(axis_stripes[band]) > -0.05 and float(axis_noise[band]) < -0.5  # log10 of the share: ~1 against a fraction


def test_every_spectral_vector_has_the_size_the_read_out_expects(small_model):
    with torch.no_grad():
        measured = small_model.spectral.measure(torch.rand(2, 3, 48, 40))
    for name, value in measured.items():
        if name != "grid":
            assert value.shape == (2, small_model.spectral.vector_size(name)), name


def test_spectrum_grid_is_the_shared_log_spectrum_pooled(small_model):
    images = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        grid = small_model(images)["spectrum_grid"]
    size = small_model.config.spectrum_size
    expected = torch.nn.functional.adaptive_avg_pool2d(spectral.log_spectrum(images).unsqueeze(1), size)[:, 0]
    assert grid.shape == (2, size, size) and torch.allclose(grid, expected, atol=1e-5)


def test_channel_correlations_are_the_pearson_correlations_of_channel_pairs():
    from tigas_core.model.perceptual_branch import channel_correlations, tap_statistics

    maps = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    maps[:, 1] = 3 * maps[:, 0] + 1  # perfectly correlated with channel 0
    maps[:, 2] = -maps[:, 0]         # perfectly anti-correlated
    got = channel_correlations(maps)
    for b in range(2):
        expected = torch.corrcoef(maps[b].flatten(1))
        upper = torch.triu_indices(4, 4, offset=1)
        assert torch.allclose(got[b], expected[upper[0], upper[1]], atol=1e-5)
    assert got[0, 0] == pytest.approx(1, abs=1e-5) and got[0, 1] == pytest.approx(-1, abs=1e-5)
    taps = [torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)]
    assert tap_statistics(taps, (1,)).shape == (2, tap_statistics_size([3, 5], (1,))) == (2, 2 * 8 + 10)


def test_a_config_saved_before_readout_correlations_builds_the_read_out_it_was_trained_with():
    old = TIGASConfig().to_dict()
    del old["readout_correlations"], old["readout_spectral"]  # as 2.1 saved it
    assert TIGASConfig.from_dict(old).readout_correlations == () and TIGASConfig.from_dict(old).readout_spectral == ()
    current = TIGASConfig.from_dict(TIGASConfig().to_dict())
    assert current.readout_correlations == TIGASConfig().readout_correlations
    assert current.readout_spectral == TIGASConfig().readout_spectral
    assert TIGASConfig().readout_spectral[:3] == ("profile", "dct", "artefacts")
    with pytest.raises(ValueError, match="positions in backbone_taps"):
        TIGASConfig(readout_correlations=(4,))


def test_the_read_out_reads_the_spectral_measurements_its_config_names_after_the_trunk_statistics():
    config = TIGASConfig(img_size=32, adapter_channels=8, feature_dim=32, num_heads=2, num_prototypes=4, readout_spectral=("dct",))
    model = TIGASModel(config).eval()
    trunk_columns = tap_statistics_size(model.perceptual.trunk.feature_info.channels(), config.readout_correlations)
    assert model.readout[1].in_features == trunk_columns + config.dct_block**2
    with torch.no_grad():  # a weight on the DCT columns alone: the read-out's logit is exactly their sum
        model.readout[1].weight[0, trunk_columns:] = 1.0
        x = torch.rand(2, 3, 32, 32)
        measured = model.measure(x)
        norm = model.readout[0]
        expected = ((measured["spectral"]["dct"] - norm.running_mean[trunk_columns:])
                    / torch.sqrt(norm.running_var[trunk_columns:] + norm.eps)).sum(dim=1)
        assert torch.allclose(model(measured=measured)["readout_logit"][:, 0], expected, atol=1e-4)
    with pytest.raises(ValueError, match="no measurement vector 'grid'"):
        TIGASModel(TIGASConfig(readout_spectral=("grid",)))
