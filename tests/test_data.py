"""Datasets, leak-free splits, augmentation and balanced sampling on images the tests make."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import natural_like
from PIL import Image
from tigas_synthetic import make_dataset

from tigas_core.data import (
    LEVELS,
    AugmentSpec,
    BalancedSampler,
    ImageDataset,
    ImageRecord,
    get_level,
    jpeg_reencode,
    load_records,
    native_view,
    read_csv_index,
    recolour,
    scan_folder,
    split_records,
)
from tigas_core.data.augment import UPLOAD_QUALITIES, UPLOAD_SIDES, upload_copy, upload_view
from tigas_core.io import TIGASInputError, preprocess


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), n_real=30, fakes={"gan-a": 12, "gan-b": 9, "diff-c": 6}, tiles_per_grid=3)


def test_folder_layout_labels_generators_and_manifest_groups(dataset_root):
    records = scan_folder(dataset_root)
    by_generator = Counter((r.generator, r.label) for r in records)
    assert by_generator == {("real", 1): 30, ("gan-a", 0): 12, ("gan-b", 0): 9, ("diff-c", 0): 6}
    grids = {r.group for r in records if r.generator == "gan-a"}
    assert len(grids) == 4  # 12 tiles, 3 per grid, grouped through MANIFEST source_path


def test_cnndetection_layout_and_nested_fake_folders(tmp_path):
    for rel in ["progan/cat/0_real/a.png", "progan/cat/1_fake/b.png", "stylegan/0_real/c.png", "stylegan/1_fake/d.png",
                "zoo/fake/vae/epoch3/e.png", "zoo/real/deep/f.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(natural_like(32, 32)).save(tmp_path / rel)
    records = {r.path.split(str(tmp_path) + "/")[1]: (r.generator, r.label) for r in scan_folder(tmp_path)}
    assert records["progan/cat/0_real/a.png"] == ("progan", 1)
    assert records["stylegan/1_fake/d.png"] == ("stylegan", 0)
    nested = {(r.generator, r.label) for r in scan_folder(tmp_path / "zoo")}
    assert nested == {("vae", 0), ("real", 1)}


def test_csv_index_relative_paths_and_bad_label(tmp_path, dataset_root):
    index = tmp_path / "index.csv"
    index.write_text(f"path,label,generator\n{dataset_root}/real/class0/000.jpg,real,real\n../x/y.png,fake,gan-z\n")
    records = read_csv_index(index)
    assert [(r.label, r.generator) for r in records] == [(1, "real"), (0, "gan-z")]
    assert records[1].path == str(tmp_path / "../x/y.png")
    assert len(load_records([dataset_root, index])) == len(scan_folder(dataset_root)) + 1  # 000.jpg is in both: read once
    index.write_text("path,label\na.png,maybe\n")
    with pytest.raises(TIGASInputError, match="index.csv:2.*label"):
        read_csv_index(index)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TIGASInputError, match="no images"):
        scan_folder(tmp_path / "empty")


def test_a_folder_given_twice_is_read_once(dataset_root, monkeypatch):
    monkeypatch.chdir(dataset_root.parent)
    once = load_records([dataset_root])
    twice = load_records([dataset_root, Path(dataset_root.name)])  # absolute, then relative
    assert twice == once and len({r.path for r in once}) == len(once)


def test_splits_are_deterministic_leak_free_grouped_and_hold_out(dataset_root):
    records = scan_folder(dataset_root)
    a = split_records(records, seed=3, holdout_generators=["diff-c"])
    b = split_records(list(reversed(records)), seed=3, holdout_generators=["diff-c"])
    assert a == b
    paths = [set(r.path for r in a[name]) for name in ("train", "val", "test")]
    assert not (paths[0] & paths[1]) and not (paths[0] & paths[2]) and not (paths[1] & paths[2])
    assert set().union(*paths) == {r.path for r in records}
    group_split = {}
    for name in ("train", "val", "test"):
        for r in a[name]:
            assert group_split.setdefault(r.group, name) == name, "a tile grid was split across splits"
    assert all(r.generator != "diff-c" for r in a["train"] + a["val"])
    assert sum(r.generator == "diff-c" for r in a["test"]) == 6
    for name in ("train", "val", "test"):  # stratified: every seen generator's reals and fakes reach each split
        assert any(r.generator == "real" for r in a[name])
    assert {r.generator for r in a["train"]} == {"real", "gan-a", "gan-b"}
    other = split_records(records, seed=4, holdout_generators=["diff-c"])
    assert {r.path for r in other["test"]} != {r.path for r in a["test"]}
    with pytest.raises(ValueError, match="not in the data"):
        split_records(records, holdout_generators=["nope"])


def test_byte_identical_files_join_the_earliest_split_and_held_out_copies_are_dropped(tmp_path, make_image):
    """As in ../shared/data, where three stable-diffusion-2 tiles are listed twice under two
    source paths: a copy is never tested against its twin in training."""
    def save(relative: str, seed: int) -> str:
        return str(make_image(relative, size=(40, 40), seed=seed))

    records = [ImageRecord(save(f"real/{i}.png", i), 1, "real", f"r{i}") for i in range(10)]
    originals = [ImageRecord(save(f"fake/gen/{i}.png", 100 + i), 0, "gen", f"g{i}") for i in range(10)]
    copies = [ImageRecord(save(f"fake/gen/copy_{i}.png", 100 + i), 0, "gen", f"copy{i}") for i in range(10)]
    options = dict(seed=0, train_split=0.5, val_split=0.2, holdout_generators=["other"])
    first = split_records(records + originals + copies + [ImageRecord(save("fake/other/1.png", 999), 0, "other", "o1")], **options)
    where = {r.path: name for name in ("train", "val", "test") for r in first[name]}
    assert all(where[o.path] == where[c.path] for o, c in zip(originals, copies))  # each copy beside its twin
    assert len({where[c.path] for c in copies}) > 1  # the deal itself is untouched: copies still spread over splits
    assert len(where) == 31 and where[str(tmp_path / "fake/other/1.png")] == "test"
    trained = next(o for o in originals if where[o.path] == "train")
    held_copy = ImageRecord(save("fake/other/0.png", 100 + originals.index(trained)), 0, "other", "o0")
    second = split_records(records + originals + copies + [held_copy], **options)
    assert held_copy not in second["test"] and sum(map(len, second.values())) == 30  # neither trained on nor "unseen"


def test_every_level_above_none_jpeg_reencodes_both_classes():
    assert LEVELS["none"].jpeg_quality is None
    for name in ("light", "medium", "strong", "strong-colour"):
        assert get_level(name).jpeg_quality == (30, 100)
    with pytest.raises(ValueError, match="augment level"):
        get_level("extreme")
    image = torch.from_numpy(natural_like(48, 64, seed=1)).permute(2, 0, 1).float() / 255
    png_like = image.clone()
    reencoded = jpeg_reencode(png_like, 30)
    assert reencoded.shape == image.shape and 0.002 < (reencoded - image).abs().mean() < 0.1
    spec, rng = get_level("native"), random.Random(0)
    views = [native_view(image, 40, spec, rng) for _ in range(4)]
    assert all(v.shape == (3, 40, 40) and 0 <= float(v.min()) and float(v.max()) <= 1 for v in views)
    assert not torch.equal(views[0], views[1])
    small = native_view(image[:, :20, :30], 40, spec, rng)  # smaller than the view: resized up, never padded
    assert small.shape == (3, 40, 40)


def test_an_upload_view_is_the_inference_view_of_a_resized_jpeg_copy():
    """Small images are enlarged before the JPEG, as an upload site (and the web condition) does it."""
    from tigas_core.training.feature_cache import web_copy

    small = torch.from_numpy(natural_like(32, 48, seed=4)).permute(2, 0, 1).float() / 255
    copy = upload_copy(small, 256, 75)
    assert copy.shape == (3, 256, 384) and torch.equal(copy, web_copy(small))
    enlarged_after = preprocess(jpeg_reencode(small, 75), 224)  # the JPEG's 8 px blocks, magnified
    view = upload_view(small, 224, random.Random(0))
    assert view.shape == (3, 224, 224) and not torch.allclose(view, enlarged_after, atol=0.02)
    rng = random.Random(0)
    side, quality = rng.randint(*UPLOAD_SIDES), rng.randint(*UPLOAD_QUALITIES)
    assert torch.equal(view, preprocess(upload_copy(small, side, quality), 224))


def test_native_view_keeps_the_pixel_scale_of_a_large_image():
    """Without resizing, a view of a large image is one of its own crops, pixel for pixel (before JPEG)."""
    image = torch.from_numpy(natural_like(300, 400, seed=3)).permute(2, 0, 1).float() / 255
    view = native_view(image, 64, AugmentSpec(), random.Random(1))
    windows = image.unfold(1, 64, 1).unfold(2, 64, 1)  # [3, 237, 337, 64, 64]
    distance = (windows - view[:, None, None]).abs().amax(dim=(0, 3, 4))
    assert float(distance.min()) < 1e-6


def test_colour_jitter_keeps_luma_and_can_drop_colour():
    image = torch.from_numpy(natural_like(40, 40, seed=2)).permute(2, 0, 1).float() / 255
    luma = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    grey = recolour(image, 0.0)
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])
    assert torch.allclose(grey[0], luma, atol=1e-6)
    assert torch.allclose(recolour(image, 1.0), image, atol=1e-6)
    vivid = recolour(image, 1.5)
    assert float((vivid - luma).abs().mean()) > float((image - luma).abs().mean())
    spec = get_level("strong-colour")
    views = [native_view(image, 32, spec, random.Random(seed)) for seed in range(40)]
    greyscale = [v for v in views if float((v[0] - v[2]).abs().max()) < 0.05]
    assert 1 <= len(greyscale) < 20  # 15% of views, the rest keep (jittered) colour


def test_dataset_views_and_bad_file_skipped(dataset_root, tmp_path, caplog):
    records = scan_folder(dataset_root)[:5]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    records = [records[0].__class__(str(broken), 1, "real", "x")] + records
    train = ImageDataset(records, 32, train=True, augment_level="medium", seed=1)
    image, label, index = train[0]
    assert image.shape == (3, 32, 32) and index == 1 and float(label) == records[1].label
    assert "broken.png" in caplog.text
    train.set_epoch(1)
    assert not torch.equal(train[2][0], ImageDataset(records, 32, train=True, augment_level="medium", seed=1)[2][0])
    evaluation = ImageDataset(records, 32)
    assert torch.equal(evaluation[3][0], evaluation[3][0])


def test_balanced_sampler_balances_classes_and_generators_and_shards(dataset_root):
    records = scan_folder(dataset_root)
    sampler = BalancedSampler(records, 6000, seed=0)
    drawn = Counter((records[i].label, records[i].generator) for i in sampler)
    real_share = drawn[(1, "real")] / 6000
    assert 0.46 < real_share < 0.54  # 30 reals vs 27 fakes in 3 generators of 12/9/6 images
    roots = {"gan-a": 12**0.5, "gan-b": 9**0.5, "diff-c": 6**0.5}
    for generator, root in roots.items():  # each generator's share of the fake half grows as sqrt(size)
        expected = 0.5 * root / sum(roots.values())
        assert abs(drawn[(0, generator)] / 6000 - expected) < 0.025
    shards = [list(BalancedSampler(records, 100, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 50
    full = list(BalancedSampler(records, 100, seed=0))
    assert sorted(shards[0] + shards[1]) == sorted(full)
    sampler.set_epoch(1)
    assert list(sampler)[:20] != list(BalancedSampler(records, 6000, seed=0))[:20]
    assert np.isclose(float(sampler.weights.sum()), 1.0)
    equal = BalancedSampler(records, 6000, seed=0, generator_balance=0.0)  # every generator the same share
    drawn = Counter(records[i].generator for i in equal if records[i].label == 0)
    assert all(abs(drawn[g] / 6000 - 0.5 / 3) < 0.025 for g in roots)
