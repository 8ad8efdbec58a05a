"""Generator zoo: every model trains a few steps on tiny images, checkpoints resume exactly,
exported checkpoints sample, and `tigas zoo train` / `tigas generate` work end to end."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import natural_like
from PIL import Image

from tigas_core.cli import main as cli_main
from tigas_core.generators import MODELS, build_model, load_for_sampling
from tigas_core.generators.clusters import ImageClusters, LayoutCodes
from tigas_core.generators.common import MixturePrior, load_checkpoint, save_checkpoint
from tigas_core.generators.ddpm import cosine_alpha_bar, min_snr_weight, timestep_embedding
from tigas_core.generators.gan import diff_augment
from tigas_core.generators.sampling import generate_images
from tigas_core.generators.train import ZooTrainOptions, train_zoo_model
from tigas_core.precision import has_fast_bf16

# Tiny networks at 16 px so each model trains in well under a second per step.
TINY = {
    "dcgan": {"nz": 8, "ngf": 8, "ndf": 8, "ema": 0.999, "layout_prior": 2},
    "wgan_gp": {"nz": 8, "ngf": 8, "ndf": 8, "n_critic": 2},
    "cgan": {"nz": 8, "ngf": 8, "ndf": 8},
    "vae": {"latent": 8, "width": 8, "ndf": 8},
    "ddpm": {"width": 8, "mults": [1, 2], "timesteps": 50, "sample_steps": 4, "n_classes": 2},
    "stylegan": {"z_dim": 8, "w_dim": 8, "mapping_layers": 2, "channels": 8, "max_channels": 16, "ndf": 8, "ema": 0.999},
    "progan": {"z_dim": 8, "channels": 8, "max_channels": 16, "phase_steps": 1},  # 16 px reached in 4 steps
    "text2image": {"nz": 8, "ngf": 8, "ndf": 8},
}
AUTO_PRECISION = "bf16" if has_fast_bf16(torch.device("cpu")) else "fp32"  # what the default, auto, picks here


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Two class folders of 32 px natural-like images and one unreadable file."""
    root = tmp_path_factory.mktemp("zoo_data")
    for class_index, label in enumerate(("cats", "ships")):
        (root / label).mkdir()
        for i in range(6):  # seeded by position, the same images in every run (hash() of a str is not)
            Image.fromarray(natural_like(32, 32, seed=100 * class_index + i)).save(root / label / f"{i}.png")
    (root / "ships" / "broken.png").write_bytes(b"not a png")
    return root


def options(model: str, data: Path, out: Path, steps: int, **extra) -> ZooTrainOptions:
    return ZooTrainOptions(model=model, data=data, out=out, minutes=5, max_steps=steps, batch_size=4, img_size=16,
                           overrides=TINY[model], grid_size=4, **extra)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_generator_trains_and_samples(name, image_folder, tmp_path):
    torch.manual_seed(0)
    summary = train_zoo_model(options(name, image_folder, tmp_path, steps=4))
    assert summary["step"] == 4 and summary["epoch"] == 1  # 12 readable images / batch 4 = 3 batches
    assert (tmp_path / "samples" / "final.png").is_file() and (tmp_path / "samples" / "epoch_0001.png").is_file()
    assert any((tmp_path / "tb").iterdir())
    model = load_for_sampling(str(tmp_path), expected_model=name)
    images = model.sample(5, seed=1)
    assert images.shape == (5, 3, 16, 16)
    assert images.min() >= 0.0 and images.max() <= 1.0 and torch.isfinite(images).all()
    assert images.std() > 0.0
    assert torch.equal(images, model.sample(5, seed=1))  # same seed, same images
    _, meta = load_checkpoint(tmp_path)
    if name == "cgan":
        assert meta["config"]["n_classes"] == 2 and meta["class_names"] == ["cats", "ships"]
    if name == "ddpm":  # fewer DDIM steps: still valid images, different ones
        files = generate_images(tmp_path, tmp_path / "fake", n=2, seed=1, sample_steps=2)
        assert len(files) == 2 and Image.open(files[0]).size == (16, 16)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_training_runs_its_convolutions_in_bfloat16_and_keeps_float32_weights(name, image_folder, tmp_path, monkeypatch):
    seen: set[torch.dtype] = set()
    real_build = MODELS[name].build

    def build_and_watch(self, for_training):  # record what the convolutions of every network compute in
        real_build(self, for_training)
        for net in self.networks.values():
            for module in net.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype) if torch.is_grad_enabled() else None)

    monkeypatch.setattr(MODELS[name], "build", build_and_watch)
    torch.manual_seed(0)
    summary = train_zoo_model(options(name, image_folder, tmp_path, steps=3, precision="bf16"))
    assert seen == {torch.bfloat16}
    assert all(math.isfinite(value) for value in summary["last"].values())
    tensors, meta = load_checkpoint(tmp_path)
    assert meta["precision"] == "bf16"
    dtypes = {value.dtype for value in tensors.values() if value.is_floating_point()}  # weights, EMA, Adam moments
    assert torch.float32 in dtypes and torch.bfloat16 not in dtypes
    images = load_for_sampling(str(tmp_path)).sample(3, seed=0)
    assert images.dtype == torch.float32 and torch.isfinite(images).all() and images.std() > 0


def test_auto_precision_is_recorded_as_what_it_chose(image_folder, tmp_path):
    train_zoo_model(options("vae", image_folder, tmp_path, steps=1, precision="auto"))
    _, meta = load_checkpoint(tmp_path)
    assert meta["precision"] == AUTO_PRECISION


def test_unknown_precision_is_refused(image_folder, tmp_path):
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of auto, fp32, bf16"):
        train_zoo_model(options("vae", image_folder, tmp_path, steps=1, precision="fp16"))


def test_resume_continues_exactly(image_folder, tmp_path):
    """2 + 2 steps with a checkpoint in between == 4 steps in one go (RNG, data order, Adam, EMA)."""
    train_zoo_model(options("dcgan", image_folder, tmp_path / "straight", steps=4))
    train_zoo_model(options("dcgan", image_folder, tmp_path / "resumed", steps=2))
    summary = train_zoo_model(options("dcgan", image_folder, tmp_path / "resumed", steps=4))
    assert summary["step"] == 4
    straight, _ = load_checkpoint(tmp_path / "straight")
    resumed, _ = load_checkpoint(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.allclose(straight[key].float(), resumed[key].float(), atol=1e-6), key


def test_a_resumed_run_keeps_its_batch_size(image_folder, tmp_path):
    """A run's position in an epoch is counted in its own batches, so resuming keeps them."""
    def run(steps: int, batch_size: int | None) -> dict:
        return train_zoo_model(dataclasses.replace(options("dcgan", image_folder, tmp_path, steps=steps), batch_size=batch_size))

    assert run(2, 3)["batch_size"] == 3
    assert load_checkpoint(tmp_path)[1]["batch_size"] == 3
    resumed = run(4, None)  # no --batch-size: the run's own
    assert (resumed["batch_size"], resumed["step"]) == (3, 4)
    with pytest.raises(ValueError, match="trains with batch size 3, not 4"):
        run(5, 4)
    meta_file = tmp_path / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    del meta["batch_size"]  # a run from before checkpoints recorded it trained with 64
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="fewer than one batch of 64"):
        run(5, None)


def test_resume_refuses_other_model(image_folder, tmp_path):
    train_zoo_model(options("dcgan", image_folder, tmp_path, steps=1))
    with pytest.raises(ValueError, match="'dcgan' run, not 'vae'"):
        train_zoo_model(options("vae", image_folder, tmp_path, steps=1))


@pytest.mark.parametrize("model", ["dcgan", "vae", "ddpm"])
def test_tigas_term_in_training_loop(model, image_folder, tmp_path, weights_dir):
    run = options(model, image_folder, tmp_path, steps=2, tigas_weight=0.5, tigas_weights=str(weights_dir), tigas_warmup=4)
    if model == "ddpm":
        run.overrides = {**run.overrides, "tigas_max_t": 1.0}  # every timestep counts as late: the term always runs
    summary = train_zoo_model(run)
    assert 0.0 <= summary["last"]["tigas/score"] <= 1.0
    assert summary["last"]["tigas/term"] > 0.0
    assert (tmp_path / "samples" / "quality_sorted.png").is_file()


def test_export_then_generate_cli(image_folder, tmp_path, caplog):
    caplog.set_level("INFO", logger="tigas")
    run = tmp_path / "run"
    assert cli_main(["zoo", "train", "--model", "cgan", "--data", str(image_folder), "--out", str(run), "--steps", "2", "--device", "cpu",
                     "--batch-size", "4", "--img-size", "16", "--set", "nz=8", "--set", "ngf=8", "--set", "ndf=8", "--ema", "0.9"]) == 0
    assert f"cgan on cpu ({AUTO_PRECISION}): 12 images, 2 classes" in caplog.text  # progress reaches the terminal
    stem = tmp_path / "small" / "cgan"
    assert cli_main(["zoo", "export", "--checkpoint", str(run), "--out", str(stem)]) == 0
    last = tmp_path / "small" / "cgan_last"
    assert cli_main(["zoo", "export", "--checkpoint", str(run), "--out", str(last), "--no-ema"]) == 0
    exported_meta = json.loads(last.with_suffix(".json").read_text())
    assert (exported_meta["weights"], exported_meta["batch_size"]) == ("last", 4)  # how it was trained travels with it
    assert not torch.equal(load_checkpoint(stem)[0]["generator.net.0.weight"], load_checkpoint(last)[0]["generator.net.0.weight"])
    exported = stem.with_suffix(".safetensors")
    assert exported.stat().st_size < 5 * 2**20
    assert exported.stat().st_mode & 0o777 == stem.with_suffix(".json").stat().st_mode & 0o777  # not mkstemp's 0600
    assert all(k.startswith("generator.") for k in load_checkpoint(stem)[0])
    full, small = load_for_sampling(str(run)), load_for_sampling(str(stem))
    labels = torch.tensor([0, 1, 1])
    assert torch.allclose(full.sample(3, labels, seed=3), small.sample(3, labels, seed=3), atol=0.02)  # fp16 export

    out = tmp_path / "fake" / "cgan"
    assert cli_main(["generate", "--model", "cgan", "--checkpoint", str(stem), "--n", "7", "--batch-size", "3", "--out", str(out),
                     "--device", "cpu"]) == 0
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"cgan_{i:05d}.png" for i in range(7)]
    assert Image.open(files[0]).size == (16, 16)
    truncated = tmp_path / "fake" / "cgan_psi"
    assert cli_main(["generate", "--checkpoint", str(stem), "--n", "2", "--truncation", "0.5", "--out", str(truncated)]) == 0
    assert files[0].read_bytes() != (truncated / "cgan_00000.png").read_bytes()
    assert cli_main(["generate", "--model", "vae", "--checkpoint", str(stem), "--n", "1", "--out", str(out)]) == 2
    assert cli_main(["generate", "--checkpoint", str(stem), "--n", "1", "--sample-steps", "3", "--out", str(out)]) == 2
    caplog.clear()
    never = tmp_path / "fake" / "never"
    assert cli_main(["generate", "--checkpoint", str(stem), "--n", "1", "--label", "2", "--out", str(never)]) == 2
    assert "class indices 0-1" in caplog.text and not never.exists()  # refused before any folder is made


def test_generate_is_reproducible(image_folder, tmp_path):
    train_zoo_model(options("vae", image_folder, tmp_path / "run", steps=1))
    a = generate_images(tmp_path / "run", tmp_path / "a", n=3, seed=5)
    b = generate_images(tmp_path / "run", tmp_path / "b", n=3, seed=5)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_class_conditional_ddpm_with_guidance(image_folder, tmp_path):
    run = tmp_path / "ddpm_cond"
    overrides = {**TINY["ddpm"], "label_dropout": 0.5}  # class-conditional by default
    train_zoo_model(ZooTrainOptions(model="ddpm", data=image_folder, out=run, minutes=5, max_steps=2, batch_size=4,
                                    img_size=16, overrides=overrides, grid_size=4))
    model = load_for_sampling(str(run))
    assert model.conditional and model.config["n_classes"] == 2
    labels = torch.tensor([0, 1, 1])
    guided = model.sample(3, labels, seed=1)
    assert guided.shape == (3, 3, 16, 16) and 0 <= guided.min() and guided.max() <= 1
    model.config["guidance"] = 1.0  # one conditional pass, no guidance
    assert not torch.allclose(guided, model.sample(3, labels, seed=1))
    unet = model.networks["unet"]
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 10])
    assert not torch.allclose(unet(x, t, torch.tensor([0, 0])), unet(x, t, torch.tensor([2, 2])))  # label 2 = none
    with pytest.raises(ValueError, match="labels are required"):
        unet(x, t)
    out = tmp_path / "fake"
    assert cli_main(["generate", "--checkpoint", str(run), "--n", "2", "--guidance", "2", "--out", str(out)]) == 0
    plain = tmp_path / "plain"
    train_zoo_model(ZooTrainOptions(model="ddpm", data=image_folder, out=plain, minutes=5, max_steps=1, batch_size=4,
                                    img_size=16, overrides={**TINY["ddpm"], "class_conditional": False}, grid_size=4))
    assert not load_for_sampling(str(plain)).conditional
    meta_file = plain / "checkpoint.json"  # a checkpoint from before the option: no class_conditional key
    meta = json.loads(meta_file.read_text())
    del meta["config"]["class_conditional"]
    meta_file.write_text(json.dumps(meta))
    assert not load_for_sampling(str(plain)).conditional
    assert cli_main(["generate", "--checkpoint", str(plain), "--n", "1", "--guidance", "2", "--out", str(out)]) == 2


@pytest.mark.parametrize("name", ["wgan_gp", "dcgan"])
def test_class_conditional_option(name, image_folder, tmp_path):
    """`--set class_conditional=true` makes WGAN-GP (or the DCGAN, which is then the cGAN with
    another critic) conditional on the class folders; the label changes the image, and sampling
    cycles through the classes."""
    run = tmp_path / name
    train_zoo_model(ZooTrainOptions(model=name, data=image_folder, out=run, minutes=5, max_steps=2, batch_size=4,
                                    img_size=16, overrides={**TINY[name], "layout_prior": 0, "class_conditional": True}, grid_size=4))
    model = load_for_sampling(str(run))
    assert model.conditional and model.config["n_classes"] == 2
    cats, ships = model.sample(2, torch.tensor([0, 0]), seed=1), model.sample(2, torch.tensor([1, 1]), seed=1)
    assert cats.shape == (2, 3, 16, 16) and not torch.allclose(cats, ships)
    assert torch.equal(model.sample(2, seed=1), model.sample(2, torch.tensor([0, 1]), seed=1))
    assert not build_model(name, {**TINY[name], "img_size": 16}).conditional  # unconditional by default
    with pytest.raises(ValueError, match="n_classes"):
        build_model(name, {**TINY[name], "img_size": 16, "layout_prior": 0, "class_conditional": True})


def test_mixture_prior_recovers_the_codes_it_was_fitted_to():
    prior = MixturePrior(latent=2, components=3)
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    assert not prior.fitted and torch.equal(prior.sample(noise, None, 0.5), 0.5 * noise)  # unfitted: N(0, I)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 1.0]])
    torch.manual_seed(0)
    codes = torch.cat([centres[0] + 0.1 * torch.randn(300, 2), centres[1] + 0.5 * torch.randn(700, 2)])
    prior.fit(codes[:2])  # fewer codes than components: the spare component weighs nothing
    assert prior.fitted and prior.weights[2] == 0
    prior = MixturePrior(latent=2, components=2)
    prior.fit(codes)
    order = prior.means[:, 0].argsort()
    assert torch.allclose(prior.weights[order], torch.tensor([0.3, 0.7]), atol=0.01)
    assert torch.allclose(prior.means[order], centres, atol=0.1)
    drawn = prior.sample(noise, torch.Generator().manual_seed(1), 1.0)
    left = drawn[:, 0] < 0
    assert abs(left.float().mean() - 0.3) < 0.04
    assert torch.allclose(drawn[left].std(0), torch.tensor([0.1, 0.1]), atol=0.02)
    assert torch.allclose(drawn[~left].std(0), torch.tensor([0.5, 0.5]), atol=0.06)
    at_means = prior.sample(noise, torch.Generator().manual_seed(1), 1e-6)  # truncation -> the component means
    assert torch.allclose(at_means[left], centres[0].expand(int(left.sum()), 2), atol=0.01)


def test_vae_checkpoints_carry_their_fitted_prior(image_folder, tmp_path):
    run = tmp_path / "run"
    train_zoo_model(options("vae", image_folder, run, steps=2))
    tensors, meta = load_checkpoint(run)
    assert meta["config"]["prior_components"] == 10
    assert tensors["prior.weights"].sum() == pytest.approx(1.0, abs=1e-5)  # fitted at the checkpoint
    stem = tmp_path / "small" / "vae"
    assert cli_main(["zoo", "export", "--checkpoint", str(run), "--out", str(stem)]) == 0
    exported = load_checkpoint(stem)[0]
    assert {k.split(".")[0] for k in exported} == {"decoder", "prior"}
    full, small = load_for_sampling(str(run)), load_for_sampling(str(stem))
    assert small.networks["prior"].fitted
    assert torch.allclose(full.sample(4, seed=3), small.sample(4, seed=3), atol=0.02)  # fp16 export
    unfitted = load_for_sampling(str(run))
    unfitted.networks["prior"].weights.zero_()
    assert not torch.allclose(full.sample(4, seed=3), unfitted.sample(4, seed=3), atol=0.02)
    meta = json.loads(stem.with_suffix(".json").read_text())  # a VAE from before the prior: N(0, I)
    del meta["config"]["prior_components"], meta["config"]["adversarial"]
    save_checkpoint(tmp_path / "old" / "vae", {k: v for k, v in exported.items() if k.startswith("decoder.")}, meta)
    old = load_for_sampling(str(tmp_path / "old" / "vae"))
    assert old.config["prior_components"] == 0 and not old.networks["prior"].fitted
    assert old.config["adversarial"] == 0
    assert old.sample(2, seed=0).shape == (2, 3, 16, 16)


def test_adversarial_vae_trains_its_critic_and_balances_the_two_gradients(image_folder, tmp_path):
    torch.manual_seed(0)
    overrides = {**TINY["vae"], "adversarial": 0.5, "adversarial_warmup": 4}
    model = build_model("vae", {**overrides, "img_size": 16})
    critic = model.networks["critic"]
    before = [p.detach().clone() for p in critic.parameters()]
    real = torch.rand(6, 3, 16, 16) * 2 - 1
    logs = model.train_step(real, torch.zeros(6, dtype=torch.long), step=0)
    assert logs["adv_weight"] > 0 and math.isfinite(logs["loss/g_adv"]) and math.isfinite(logs["loss/d"])
    assert any(not torch.equal(a, b) for a, b in zip(before, critic.parameters()))
    assert all(p.requires_grad for p in critic.parameters())  # frozen only inside the VAE step

    # The adaptive weight makes the adversarial pull on the decoder's last layer `adversarial` times the
    # pixel loss's, after a linear warm-up (a quarter of it at step 0 of 4).
    last = model.networks["decoder"].net[-2].weight
    decoded = model.networks["decoder"](torch.randn(4, 8))
    rec = (decoded - real[:4]).pow(2).sum()
    adv = torch.nn.functional.softplus(-model.critic(decoded)).mean()
    g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0].norm()
    g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0].norm()
    for step, ramp in ((0, 0.25), (3, 1.0), (100, 1.0)):
        weight = model.adversarial_weight(rec, adv, step)
        assert float(weight * g_adv) == pytest.approx(ramp * 0.5 * float(g_rec), rel=1e-3)

    run = tmp_path / "run"
    train_zoo_model(dataclasses.replace(options("vae", image_folder, run, steps=2), overrides=overrides))
    tensors, meta = load_checkpoint(run)
    assert meta["config"]["adversarial"] == 0.5 and any(k.startswith("critic.") for k in tensors)
    assert train_zoo_model(dataclasses.replace(options("vae", image_folder, run, steps=3), overrides=overrides))["step"] == 3
    stem = tmp_path / "small" / "vae"
    assert cli_main(["zoo", "export", "--checkpoint", str(run), "--out", str(stem)]) == 0
    assert {k.split(".")[0] for k in load_checkpoint(stem)[0]} == {"decoder", "prior"}  # the critic only trains
    images = load_for_sampling(str(stem)).sample(3, seed=1)
    assert images.shape == (3, 3, 16, 16) and 0 <= images.min() and images.max() <= 1


# No GPU here: the `meta` device stands in for one. Its tensors carry shapes and a device but no
# data, so code that meets one with a CPU tensor, or asks it for numpy, fails as it would on CUDA.

def test_ddpm_timestep_embedding_is_made_on_the_timesteps_device():
    assert timestep_embedding(torch.zeros(3, device="meta"), 8).device.type == "meta"  # a CPU table raised here
    embedding = timestep_embedding(torch.tensor([0.0, 5.0]), 8)
    assert embedding.shape == (2, 8) and torch.equal(embedding[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_layout_codes_fit_while_their_buffers_are_on_another_device():
    """The zoo moves its networks to the device before it fits the layout codes of the images."""
    images = torch.from_numpy(np.stack([natural_like(32, 32, seed=i) for i in range(40)])).permute(0, 3, 1, 2).contiguous()
    on_cpu = LayoutCodes().fit_codes(images)
    elsewhere = LayoutCodes().to("meta")
    assert np.array_equal(elsewhere.fit_codes(images), on_cpu)  # the buffers' numpy copy used to raise off the CPU
    assert elsewhere.projection.device.type == "meta" and on_cpu.shape == (40, 32)


def test_image_clusters_find_colour_layouts_and_draw_by_share():
    torch.manual_seed(0)
    layouts = torch.tensor([[200, 30, 30], [30, 30, 200], [30, 200, 30]], dtype=torch.float)
    group = torch.tensor([0] * 30 + [1] * 60 + [2] * 10)
    images = layouts[group][:, :, None, None].expand(-1, -1, 16, 16).clone()
    images[group == 1, :, 8:] = 255.0  # a white lower half: a second cue for the blue group
    images = (images + torch.randn_like(images) * 20).clamp(0, 255).to(torch.uint8)
    clusters = ImageClusters(3)
    with pytest.raises(ValueError, match="cannot form 3 clusters"):
        clusters.fit(images[:2])
    clusters.fit(images)
    assigned = clusters.assign(images)
    for g in range(3):  # each layout is one cluster, and no two layouts share one
        assert len(assigned[group == g].unique()) == 1
    assert len(assigned.unique()) == 3
    shares = sorted(clusters.weights.tolist())
    assert shares == pytest.approx([0.1, 0.3, 0.6], abs=1e-6)
    drawn = clusters.draw(5000, torch.Generator().manual_seed(0))
    assert torch.bincount(drawn, minlength=3).float().div(5000).sort().values.tolist() == pytest.approx([0.1, 0.3, 0.6], abs=0.02)


def test_self_conditioned_gan_resumes_exports_and_samples_unconditionally(image_folder, tmp_path, caplog):
    caplog.set_level("INFO", logger="tigas")

    def run(out: Path, steps: int) -> dict:
        return train_zoo_model(ZooTrainOptions(model="dcgan", data=image_folder, out=out, minutes=5, max_steps=steps, batch_size=4,
                                               img_size=16, overrides={**TINY["dcgan"], "clusters": 3, "layout_prior": 0}, grid_size=4))

    run(tmp_path / "straight", 4)
    assert "dcgan: self-conditioned on 3 clusters" in caplog.text and "NMI with the 2 class folders" in caplog.text
    # no class count: the folders are not its labels
    assert f"dcgan on cpu ({AUTO_PRECISION}): 12 images, batches of 4, 3 per epoch" in caplog.text
    run(tmp_path / "resumed", 2)
    run(tmp_path / "resumed", 4)  # the clusters come back from the checkpoint, not from a new fit
    straight, meta = load_checkpoint(tmp_path / "straight")
    resumed, _ = load_checkpoint(tmp_path / "resumed")
    for key in straight:
        assert torch.allclose(straight[key].float(), resumed[key].float(), atol=1e-6), key
    assert meta["config"]["clusters"] == 3 and straight["clusters.weights"].sum() == pytest.approx(1.0)
    assert straight["generator.embed.weight"].shape[0] == 3 and any(k.startswith("discriminator.embed.") for k in straight)
    model = load_for_sampling(str(tmp_path / "straight"))
    assert not model.conditional and model.clustered  # from the outside: an unconditional generator
    images = model.sample(6, seed=1)
    assert images.shape == (6, 3, 16, 16) and torch.equal(images, model.sample(6, seed=1))
    stem = tmp_path / "small" / "dcgan"
    assert cli_main(["zoo", "export", "--checkpoint", str(tmp_path / "straight"), "--out", str(stem)]) == 0
    assert {k.split(".")[0] for k in load_checkpoint(stem)[0]} == {"generator", "clusters"}
    assert torch.allclose(load_for_sampling(str(stem)).sample(6, seed=1), images, atol=0.02)
    files = generate_images(stem, tmp_path / "fake", n=3, seed=0)
    assert len(files) == 3
    with pytest.raises(ValueError, match="stand in for class labels"):
        build_model("cgan", {**TINY["cgan"], "clusters": 2, "n_classes": 2})
    old = json.loads(stem.with_suffix(".json").read_text())  # a GAN from before the options: no clusters, no layouts
    for key in ("clusters", "layout_prior", "layout_weight"):
        del old["config"][key]
    plain = tmp_path / "plain" / "dcgan"
    plain_weights = build_model("dcgan", {**TINY["dcgan"], "img_size": 16, "layout_prior": 0}, for_training=False).sampler_tensors()
    save_checkpoint(plain, plain_weights, old)
    model = load_for_sampling(str(plain))
    assert not model.clustered and not model.layout_conditioned


def test_layout_conditioned_gan_samples_from_its_layout_prior(image_folder, tmp_path, caplog):
    """`layout_prior`: the generator follows the colour-layout code it is given, the fitted prior
    travels in the exported checkpoint, and the layout term is trained and logged."""
    caplog.set_level("INFO", logger="tigas")
    overrides = TINY["dcgan"]  # conditioned on layouts by default, with layout_weight 1
    run = tmp_path / "run"
    summary = train_zoo_model(ZooTrainOptions(model="dcgan", data=image_folder, out=run, minutes=5, max_steps=3,
                                              batch_size=4, img_size=16, overrides=overrides, grid_size=4))
    assert summary["last"]["loss/g_layout"] > 0
    assert "conditioned on the colour layout" in caplog.text
    stem = tmp_path / "small" / "dcgan"
    assert cli_main(["zoo", "export", "--checkpoint", str(run), "--out", str(stem)]) == 0
    assert {k.split(".")[0] for k in load_checkpoint(stem)[0]} == {"generator", "layout_prior"}
    model = load_for_sampling(str(stem))
    assert not model.conditional and model.layout_conditioned and model.networks["layout_prior"].fitted
    images = model.sample(4, seed=1)
    assert images.shape == (4, 3, 16, 16) and torch.equal(images, model.sample(4, seed=1))
    generator, z = model.networks["generator"], torch.randn(2, TINY["dcgan"]["nz"])
    assert not torch.allclose(generator(z, torch.zeros(2, 32)), generator(z, torch.full((2, 32), 3.0)))
    with pytest.raises(ValueError, match="excludes labels and clusters"):
        build_model("dcgan", {**TINY["dcgan"], "img_size": 16, "clusters": 2})


def test_feature_critic_trains_on_the_class_folders_then_stays_frozen(image_folder, tmp_path, caplog):
    """`feature_critic`: the feature network is trained once (inside the budget) on the class
    folders, then neither training nor a resume changes it, while the generator gets gradients
    through it and its heads learn; sampling needs none of it."""
    caplog.set_level("INFO", logger="tigas")
    overrides = {**TINY["dcgan"], "feature_critic": True, "feature_epochs": 2}

    def run(out: Path, steps: int) -> dict:
        return train_zoo_model(ZooTrainOptions(model="dcgan", data=image_folder, out=out, minutes=5, max_steps=steps,
                                               batch_size=4, img_size=16, overrides=overrides, grid_size=4))

    run(tmp_path / "a", 1)
    assert caplog.text.count("feature network trained on the class folders: 2 epochs") == 1
    after_one, _ = load_checkpoint(tmp_path / "a")
    assert bool(after_one["features.trained"])
    run(tmp_path / "a", 3)  # resumed: no second fit
    assert caplog.text.count("feature network trained") == 1
    after_three, _ = load_checkpoint(tmp_path / "a")
    features = [k for k in after_one if k.startswith("features.")]
    assert features and all(torch.equal(after_one[k], after_three[k]) for k in features)  # frozen, BatchNorm statistics too
    heads = [k for k in after_one if k.startswith("feature_critic.") and k.endswith("original")]
    assert heads and any(not torch.equal(after_one[k], after_three[k]) for k in heads)

    model = build_model("dcgan", {**overrides, "img_size": 16})
    model.networks["features"].trained.fill_(True)
    model.networks["features"].requires_grad_(False)
    model.set_train(True)
    assert not model.networks["features"].training  # set_train leaves a trained feature network in eval mode
    fake = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    outputs = model.critic(fake, torch.zeros(4, 32))
    assert outputs.shape == (4, 4)  # the discriminator and three feature scales
    outputs[:, 1:].sum().backward()  # the feature critic alone: gradients reach the images through the frozen network
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.networks["features"].parameters())

    assert load_for_sampling(str(tmp_path / "a")).sample(2, seed=0).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="class sub-folders"):
        from tigas_core.generators.features import FeatureNet, train_feature_net
        train_feature_net(FeatureNet(), torch.zeros(8, 3, 16, 16, dtype=torch.uint8), torch.zeros(8, dtype=torch.long), 1, 0)
    with pytest.raises(ValueError, match="non-saturating"):
        build_model("wgan_gp", {**TINY["wgan_gp"], "feature_critic": True})


def test_a_run_from_before_a_config_key_resumes_as_it_was_trained(image_folder, tmp_path):
    def run(overrides: dict, steps: int) -> dict:
        return train_zoo_model(ZooTrainOptions(model="dcgan", data=image_folder, out=tmp_path, minutes=5, max_steps=steps,
                                               batch_size=4, img_size=16, overrides=overrides, grid_size=4))

    unconditioned = {**TINY["dcgan"], "layout_prior": 0}
    run(unconditioned, 2)
    meta_file = tmp_path / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    for key in ("layout_prior", "layout_weight", "class_conditional"):  # written before those options existed
        del meta["config"][key]
    meta_file.write_text(json.dumps(meta))
    assert run(unconditioned, 3)["step"] == 3
    with pytest.raises(ValueError, match="config differs"):
        run(TINY["dcgan"], 4)  # today's defaults condition on layouts: not the run on disk

    def cgan_run(steps: int) -> dict:
        return train_zoo_model(ZooTrainOptions(model="cgan", data=image_folder, out=tmp_path / "cgan", minutes=5,
                                               max_steps=steps, batch_size=4, img_size=16, overrides=TINY["cgan"], grid_size=4))

    cgan_run(1)
    meta_file = tmp_path / "cgan" / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    for key in ("layout_prior", "layout_weight", "class_conditional"):  # a cGAN took labels before the option
        del meta["config"][key]
    meta_file.write_text(json.dumps(meta))
    assert load_for_sampling(str(tmp_path / "cgan")).conditional and cgan_run(2)["step"] == 2


def test_truncation_pulls_latents_towards_the_mode():
    torch.manual_seed(0)
    gan, vae, ddpm = (build_model(name, TINY[name], for_training=False) for name in ("dcgan", "vae", "ddpm"))
    z, z_half = gan.latent(64, torch.Generator().manual_seed(1)), gan.latent(64, torch.Generator().manual_seed(1), 0.5)
    assert z.shape == (64, 8) and torch.allclose(z_half, 0.5 * z)
    assert torch.equal(gan.sample(4, seed=2), gan.sample(4, seed=2, truncation=1.0))
    full, truncated = vae.sample(16, seed=2), vae.sample(16, seed=2, truncation=0.2)
    assert truncated.std(dim=0).mean() < full.std(dim=0).mean()  # decodes of nearby codes vary less
    with pytest.raises(ValueError, match="latent code"):
        ddpm.sample(1, seed=0, truncation=0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        gan.sample(1, seed=0, truncation=0.0)


def test_model_options_change_the_networks():
    sn = build_model("dcgan", {**TINY["dcgan"], "spectral_norm": True, "ttur": True}, for_training=True)
    assert any("parametrizations" in k for k in sn.networks["discriminator"].state_dict())
    lr_g = sn.optimizers["generator"].param_groups[0]["lr"]
    lr_d = sn.optimizers["discriminator"].param_groups[0]["lr"]
    assert lr_d == pytest.approx(4 * lr_g)
    assert build_model("dcgan", {**TINY["dcgan"], "ema": 0.0}).ema is None
    with pytest.raises(ValueError, match="unknown config keys.*its keys are .*adversarial"):
        build_model("vae", {"ngf": 3})
    with pytest.raises(ValueError, match="lr must be float like its default 0.0002, got 'abc'"):
        build_model("dcgan", {"lr": "abc"})  # what `--set lr=abc` passes
    with pytest.raises(ValueError, match="spectral_norm must be bool"):
        build_model("dcgan", {"spectral_norm": 1})
    with pytest.raises(ValueError, match="not class-conditional"):
        build_model("dcgan", TINY["dcgan"], for_training=False).sample(1, torch.tensor([0]), seed=0)


def test_diff_augment_cuts_out_and_keeps_gradients():
    torch.manual_seed(0)
    images = torch.full((6, 3, 32, 32), 0.5, requires_grad=True)
    out = diff_augment(images)
    assert out.shape == images.shape
    # The cutout square has half the side, so even clipped at a corner it blanks 8x8 pixels.
    blank = (out == 0).all(dim=1).flatten(1).sum(1)
    assert (blank >= 64).all() and (blank < 32 * 32).all()
    assert not torch.equal(out[0], out[1])  # drawn per image
    out.sum().backward()
    assert images.grad.abs().sum() > 0


def test_critic_sees_augmented_images_only_with_diffaug():
    torch.manual_seed(0)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    for diffaug in (True, False):
        gan = build_model("dcgan", {**TINY["dcgan"], "img_size": 16, "diffaug": diffaug})
        gan.networks["discriminator"].eval()
        codes = torch.zeros(4, 32)  # the DCGAN is conditioned on layout codes
        a, b = gan.critic(real, codes), gan.critic(real, codes)
        assert torch.equal(a, b) is (not diffaug)


@pytest.mark.parametrize("name, overrides, one_pass", [
    ("dcgan", {}, True),  # spectral norm, no normalisation layers
    ("wgan_gp", {}, True),  # per-image layer norm
    ("dcgan", {"spectral_norm": False, "layout_prior": 0}, False),  # the classic BatchNorm critic
])
def test_critic_pair_takes_one_pass_only_without_batch_statistics(name, overrides, one_pass):
    torch.manual_seed(0)
    gan = build_model(name, {**TINY[name], "img_size": 16, "diffaug": False, **overrides})
    d = gan.networks["discriminator"]
    real, fake = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    codes = torch.randn(4, 32) if gan.layout_conditioned else None
    batches = []
    handle = d.register_forward_pre_hook(lambda module, args: batches.append(len(args[0])))
    d.train()  # BatchNorm uses its batch's statistics here
    pair = gan.critic_pair(real, fake, codes)
    handle.remove()
    assert batches == ([8] if one_pass else [4, 4])
    assert gan.critic_has_batch_statistics is (not one_pass)
    if one_pass:  # the same outputs as two passes (eval: spectral norm's power iteration stands still)
        d.eval()
        pair = gan.critic_pair(real, fake, codes)
        assert torch.allclose(pair[0], gan.critic(real, codes), atol=1e-5)
        assert torch.allclose(pair[1], gan.critic(fake, codes), atol=1e-5)
    else:  # a joint batch would mix real and fake statistics: the outputs differ
        joint = gan.critic(torch.cat([real, fake]), None)
        assert not torch.allclose(joint[:4], pair[0], atol=1e-3)


def test_min_snr_weights_only_low_noise_steps():
    alpha_bar = torch.tensor([0.01, 0.5, 5 / 6, 0.9, 0.99])  # SNR 0.0101, 1, 5, 9, 99
    assert torch.allclose(min_snr_weight(alpha_bar, 5.0), torch.tensor([1.0, 1.0, 1.0, 5 / 9, 5 / 99]), atol=1e-5)
    torch.manual_seed(0)
    real = torch.rand(64, 3, 16, 16) * 2 - 1
    losses = {}
    for gamma in (0.0, 5.0):
        torch.manual_seed(1)
        ddpm = build_model("ddpm", {**TINY["ddpm"], "img_size": 16, "min_snr": gamma, "timesteps": 1000})
        torch.manual_seed(2)
        losses[gamma] = ddpm.train_step(real, torch.zeros(64, dtype=torch.long), 0)["loss/mse"]
    assert losses[5.0] < losses[0.0]  # the same draws and network, low-noise steps weighted down


def test_cosine_schedule():
    alpha_bar = cosine_alpha_bar(1000)
    assert alpha_bar[0] > 0.999 and alpha_bar[-1] < 1e-3
    assert (alpha_bar[1:] <= alpha_bar[:-1]).all()


def test_demo_set(tmp_path):
    from tigas_core.demo import PHOTOS, build_demo_set, bundled_generators, example_images

    root = build_demo_set(tmp_path / "demo", n_per_generator=3)
    reals = sorted((root / "real").glob("*.png"))
    assert len(reals) == 3 and all(Image.open(p).size == (32, 32) for p in reals)
    assert reals[0].name.startswith(PHOTOS[0])
    for stem in bundled_generators():
        assert len(list((root / stem.name).glob("*.png"))) == 3
    examples = example_images(tmp_path / "examples", n_real=2)
    assert len(examples) == 2 + len(bundled_generators())
    assert Image.open(examples[0]).size == (256, 256)
    meta = [json.loads(p.with_suffix(".json").read_text()) for p in bundled_generators()]
    assert all(m["model"] in MODELS for m in meta)
