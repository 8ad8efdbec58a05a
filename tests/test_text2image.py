"""Text-conditioned generation: captions read off the images, a vocabulary that refuses what it
does not know, prompts that steer the generator, a few steps that lower the losses, and
`tigas generate --prompt` end to end."""
from __future__ import annotations

import pytest
import torch
from conftest import natural_like
from PIL import Image

from tigas_core.cli import main as cli_main
from tigas_core.generators import build_model, load_for_sampling
from tigas_core.generators.base import frozen
from tigas_core.generators.gan import generator_loss
from tigas_core.generators.text2image import PromptVocabulary, colour_words, size_words

CLASSES = ["airplane", "automobile", "bird", "cat"]
TINY = {"class_names": CLASSES, "n_classes": 4, "nz": 8, "ngf": 8, "ndf": 8, "img_size": 16}


def solid(rgb: tuple[float, float, float], size: int = 16) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32)[:, None, None].expand(3, size, size)


def test_colour_words_name_plain_colours():
    colours = {"red": (0.9, 0.1, 0.1), "green": (0.2, 0.8, 0.2), "blue": (0.1, 0.2, 0.9), "yellow": (0.9, 0.85, 0.1),
               "brown": (0.45, 0.3, 0.15), "white": (0.95, 0.95, 0.95), "grey": (0.5, 0.5, 0.5), "black": (0.05, 0.05, 0.05)}
    assert colour_words(torch.stack([solid(rgb) for rgb in colours.values()])) == list(colours)


def test_size_words_measure_how_much_of_the_frame_the_object_fills():
    background = solid((0.2, 0.6, 0.2), 32).clone()
    small, large, medium = background.clone(), background.clone(), background.clone()
    small[:, 12:20, 12:20] = 0.9  # 6% of the frame
    large[:, 2:30, 2:30] = 0.9  # 77%
    medium[:, 6:26, 6:26] = 0.9  # 39%
    assert size_words(torch.stack([small, large, medium])) == ["small", "large", None]


def test_vocabulary_maps_fillers_plurals_and_synonyms_and_refuses_unknown_words():
    vocabulary = PromptVocabulary(CLASSES)
    ids = vocabulary.encode(["a small red car", "A photo of Cats", "birds"])
    assert vocabulary.tokens("a small red car") == ["small", "red", "automobile"]
    assert vocabulary.tokens("a photo of some big gray planes") == ["large", "grey", "airplane"]
    assert ids.shape == (3, 4) and (ids[2, 1:] == 0).all()
    with pytest.raises(ValueError, match=r"unknown word 'fast' in prompt 'a fast car'; this model knows: airplane, automobile"):
        vocabulary.encode(["a fast car"])
    with pytest.raises(ValueError, match="names nothing this model knows"):
        vocabulary.encode(["a photo of the"])
    assert PromptVocabulary(["cats", "ships"]).tokens("a cat") == ["cats"]  # class folders named in the plural


def test_captions_describe_each_image_and_drop_attributes_at_random():
    vocabulary = PromptVocabulary(CLASSES)
    images = torch.stack([solid((0.9, 0.1, 0.1)), solid((0.1, 0.2, 0.9))])
    labels = torch.tensor([1, 2])
    assert vocabulary.captions(images, labels, 0.0, torch.Generator().manual_seed(0)) == ["a red automobile", "a blue bird"]
    assert vocabulary.captions(images, labels, 1.0, torch.Generator().manual_seed(0)) == ["an automobile", "a bird"]


def test_prompts_steer_the_generator_and_a_seed_repeats_it():
    torch.manual_seed(0)
    model = build_model("text2image", TINY, for_training=False)
    red_cars = model.sample_prompts(["a red car"] * 4, seed=1)
    assert red_cars.shape == (4, 3, 16, 16) and torch.equal(red_cars, model.sample_prompts(["a red car"] * 4, seed=1))
    assert not torch.allclose(red_cars, model.sample_prompts(["a blue bird"] * 4, seed=1))
    by_class = model.sample(4, labels=torch.tensor([1, 1, 1, 1]), seed=1)  # a class index is the bare class name
    assert torch.equal(by_class, model.sample_prompts(["an automobile"] * 4, seed=1))


def test_a_few_steps_lower_the_critic_and_generator_losses_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("text2image", {**TINY, "diffaug": False})
    real = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    words = model.training_labels(((real + 1) * 127.5).to(torch.uint8), torch.arange(8) % 4, seed=0)
    assert words.shape == (8, 4) and (words[:, 0] > 0).all()
    d_losses = [model.train_step(real, words, step)["loss/d"] for step in range(30)]
    assert d_losses[-1] < d_losses[0] - 0.05
    g = model.networks["generator"]
    z = model.latent(8, torch.Generator().manual_seed(1))
    g_losses = []
    for _ in range(10):
        with frozen(*model.critics()):
            loss = generator_loss(model.critic(g(z, words), words))
        g_losses.append(loss.item())
        model.optimise("generator", loss, g)
    assert g_losses[-1] < g_losses[0]


def test_zoo_train_then_generate_with_a_prompt(tmp_path, caplog):
    for name in ("birds", "cars"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(natural_like(32, 32, seed=i + 10 * len(name))).save(tmp_path / "data" / name / f"{i}.png")
    run = tmp_path / "run"
    assert cli_main(["zoo", "train", "--model", "text2image", "--data", str(tmp_path / "data"), "--out", str(run), "--steps", "2",
                     "--batch-size", "4", "--img-size", "16", "--set", "nz=8", "--set", "ngf=8", "--set", "ndf=8"]) == 0
    assert load_for_sampling(str(run)).vocabulary.class_names == ["birds", "cars"]  # the vocabulary travels in the checkpoint
    out = tmp_path / "red_cars"
    assert cli_main(["generate", "--model", "text2image", "--checkpoint", str(run), "--prompt", "a small red car", "--n", "3",
                     "--out", str(out)]) == 0
    assert len(list(out.glob("text2image_*.png"))) == 3
    caplog.clear()
    never = tmp_path / "never"
    assert cli_main(["generate", "--checkpoint", str(run), "--prompt", "a red horse", "--n", "1", "--out", str(never)]) == 2
    assert "unknown word 'horse'" in caplog.text and not never.exists()  # refused before any folder is made
    assert cli_main(["generate", "--checkpoint", str(run), "--prompt", "a car", "--label", "1", "--n", "1", "--out", str(never)]) == 2


def test_generate_with_model_alone_uses_the_bundled_checkpoint(tmp_path, caplog):
    out = tmp_path / "red_cars"
    assert cli_main(["generate", "--model", "text2image", "--prompt", "a small red car", "--n", "2", "--out", str(out)]) == 0
    assert len(list(out.glob("text2image_*.png"))) == 2
    assert cli_main(["generate", "--model", "stylegan", "--n", "1", "--out", str(tmp_path / "never")]) == 2
    assert "no bundled zoo model 'stylegan'; choose one of " in caplog.text and "text2image" in caplog.text
    assert cli_main(["generate", "--n", "1", "--out", str(tmp_path / "never")]) == 2
    assert "give --checkpoint, or --model" in caplog.text and not (tmp_path / "never").exists()
