"""Reference metrics: Fréchet distance against closed forms, streaming statistics, unbiased KID,
Inception Score on known distributions, FD-TIGAS on folders, Inception never downloading."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import natural_like
from PIL import Image

from tigas_core.cli import main as cli_main
from tigas_core.commands.fid import compare_folders
from tigas_core.metrics.frechet import (
    FolderFeatures,
    InceptionFeatures,
    InceptionUnavailableError,
    StreamingStats,
    frechet_distance,
    inception_weights_path,
    load_inception,
)
from tigas_core.metrics.inception_score import inception_score_from_probs
from tigas_core.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel


def random_spd(dim: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def test_frechet_of_a_set_to_itself_is_zero():
    features = np.random.default_rng(0).standard_normal((500, 16))
    stats = StreamingStats(16)
    stats.update(features)
    assert frechet_distance(stats.mean, stats.cov, stats.mean, stats.cov) == pytest.approx(0.0, abs=1e-6)


def test_frechet_matches_closed_forms():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    # Diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = rng.uniform(0.5, 2.0, 8), rng.uniform(0.5, 2.0, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # General covariances: the symmetric form Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).
    s1, s2 = random_spd(8, 2), random_spd(8, 3)
    root1 = scipy.linalg.sqrtm(s1).real
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(root1 @ s2 @ root1).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-7)
    # From samples, the estimate converges to the distance between the generating Gaussians.
    x = rng.multivariate_normal(mu1, s1, size=20_000)
    y = rng.multivariate_normal(mu2, s2, size=20_000)
    sx, sy = StreamingStats(8), StreamingStats(8)
    sx.update(x)
    sy.update(y)
    assert frechet_distance(sx.mean, sx.cov, sy.mean, sy.cov) == pytest.approx(reference, rel=0.05)
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(mu1, s1, mu2[:4], s2[:4, :4])


def test_streaming_stats_match_numpy():
    data = np.random.default_rng(4).standard_normal((1000, 6)) * 3 + 1
    stats = StreamingStats(6)
    for chunk in np.array_split(data, 7):
        stats.update(torch.from_numpy(chunk).float())
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, data.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(stats.cov, np.cov(data, rowvar=False), atol=1e-4)


def test_reservoir_keeps_a_bounded_uniform_sample():
    holder = FolderFeatures(dim=1, keep=100, seed=0)
    for start in range(0, 10_000, 1000):
        holder.add(np.arange(start, start + 1000, dtype=float)[:, None])
    assert holder.kept.shape == (100, 1) and holder.stats.count == 10_000
    assert 3000 < holder.kept.mean() < 7000  # drawn from the whole stream, not its start


def test_mmd_matches_brute_force():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)) + 0.5
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    assert polynomial_kernel(x, y).shape == (5, 4)


def test_kid_is_unbiased():
    rng = np.random.default_rng(6)
    dim, n, trials = 4, 20, 400
    # Same distribution: the unbiased estimate averages to 0, the biased (V-statistic) does not.
    unbiased, biased = [], []
    for _ in range(trials):
        x, y = rng.standard_normal((n, dim)), rng.standard_normal((n, dim))
        unbiased.append(mmd2_unbiased(x, y))
        biased.append(polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean())
    stderr = np.std(unbiased) / np.sqrt(trials)
    assert abs(np.mean(unbiased)) < 3 * stderr
    assert np.mean(biased) > 10 * stderr
    # Linear kernel: E[MMD^2_u] = gamma * |mu_x - mu_y|^2 exactly, at any sample size.
    shift = np.array([0.5, -0.3, 0.2, 0.0])
    values = [mmd2_unbiased(rng.standard_normal((n, dim)), rng.standard_normal((n, dim)) + shift, degree=1, coef=0.0)
              for _ in range(trials)]
    assert np.mean(values) == pytest.approx(shift @ shift / dim, abs=3 * np.std(values) / np.sqrt(trials))


def test_kid_subsets():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((300, 8)), rng.standard_normal((200, 8)) + 1.0
    mean, std = kernel_inception_distance(a, b, subset_size=100, n_subsets=20)
    same, _ = kernel_inception_distance(a, rng.standard_normal((200, 8)), subset_size=100, n_subsets=20)
    assert mean > 10 * abs(same) and std > 0
    with pytest.raises(ValueError):
        kernel_inception_distance(a, b[:, :4])


def test_inception_score_known_cases():
    assert inception_score_from_probs(np.full((100, 10), 0.1), splits=5)[0] == pytest.approx(1.0)
    confident = np.eye(10)[np.arange(100) % 10]  # sure and spread evenly over 10 classes
    mean, std = inception_score_from_probs(confident, splits=5, seed=None)  # in order, every part holds 10 classes
    assert mean == pytest.approx(10.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    sorted_by_class = np.eye(10)[np.repeat(np.arange(10), 100)]  # a folder of class sub-folders, read in order
    assert inception_score_from_probs(sorted_by_class, splits=5, seed=None)[0] == pytest.approx(2.0)  # 2 classes a part
    assert inception_score_from_probs(sorted_by_class, splits=5)[0] > 9.5  # shuffled (the default): nearly all 10
    collapsed = np.eye(10)[np.zeros(100, int)]  # sure but always the same class
    assert inception_score_from_probs(collapsed, splits=5)[0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    for name, offset in (("a", 0), ("b", 100)):
        (root / name).mkdir()
        for i in range(12):
            image = natural_like(40, 40, seed=offset + i)
            if name == "b":
                image = (image // 64) * 64  # posterised: a visibly different distribution
            Image.fromarray(image).save(root / name / f"{i}.png")
    (root / "a" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    return root


def test_fd_tigas_on_folders(folders, tigas):
    same = compare_folders(folders / "a", folders / "a", "tigas", tigas, kid_subset_size=12, kid_subsets=5)
    different = compare_folders(folders / "a", folders / "b", "tigas", tigas, kid_subset_size=12, kid_subsets=5)
    assert same["fd"] == pytest.approx(0.0, abs=1e-6) and same["n_a"] == 12
    assert different["fd"] > 0.0 and different["kid_mean"] > same["kid_mean"]
    assert len(same["errors"]) == 2 and "bad.jpg" in same["errors"][0]


def test_fid_command(folders, weights_dir, tmp_path, capsys):
    out = tmp_path / "fid.json"
    assert cli_main(["fid", str(folders / "a"), str(folders / "b"), "--checkpoint", str(weights_dir),
                     "--kid-subset-size", "10", "--kid-subsets", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "FD-TIGAS:" in printed and "KID" in printed
    assert "12 vs 12 images" in printed
    assert out.is_file()


def test_inception_is_never_downloaded(tmp_path, monkeypatch, folders):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(InceptionUnavailableError, match="never downloads"):
        load_inception()
    assert cli_main(["fid", str(folders / "a"), str(folders / "b"), "--features", "inception"]) == 2


@pytest.mark.slow
def test_inception_features_from_cached_weights(tmp_path, monkeypatch, make_image):
    """Real Inception-v3 architecture loaded from a (randomly initialised) cached weights file."""
    from torchvision.models import inception_v3

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = inception_weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    images = torch.rand(2, 3, 32, 32)
    extractor = InceptionFeatures("pool3")
    pool3 = extractor.embed(images)
    probs = InceptionFeatures("probs", model=extractor.model).embed(images)
    assert pool3.shape == (2, 2048) and torch.isfinite(pool3).all()
    assert probs.shape == (2, 1000) and torch.allclose(probs.sum(1), torch.ones(2), atol=1e-4)
    files = [make_image("x.png", size=(48, 40)), make_image("y.jpg", size=(32, 32), seed=1)]
    (tmp_path / "bad.png").write_bytes(b"")
    features, errors = extractor.features_for_files(files + [tmp_path / "bad.png"], batch_size=8)
    assert features.shape == (2, 2048) and len(errors) == 1 and "bad.png" in errors[0]
