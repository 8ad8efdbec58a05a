"""Text-conditioned generation at CIFAR scale: the "Text2Image DCGAN" idea (Reed et al. 2016)
with a prompt vocabulary this project can build from its own data.

CIFAR-10 comes with class folders, not captions, so every training image gets a caption made
from what can be read off it: its class (the folder), its dominant colour and how much of the
frame the object fills ("a small red car", "a large brown horse"). Each attribute is left out of
a caption at random (``attribute_dropout``), so the model also learns what "a car" alone means.
Its text encoder is a bag of learnt word embeddings (one table in the generator, one in the
critic, as a cGAN has one label table in each); nothing is downloaded. A prompt may use only
the vocabulary the model was trained with (`PromptVocabulary.words`): an unknown word is refused
with the list of known ones rather than silently ignored.
"""
from __future__ import annotations

import re
from typing import Any

import torch

from tigas_core.generators.common import to_unit
from tigas_core.generators.gan import ConditionalGAN

MAX_WORDS = 4
FILLER_WORDS = frozenset({"a", "an", "the", "of", "photo", "picture", "image", "some", "one", "with", "and", "in"})
COLOURS = ("red", "orange", "brown", "yellow", "green", "blue", "purple", "white", "grey", "black")
SIZES = ("small", "large")
SYNONYMS = {"car": "automobile", "plane": "airplane", "aeroplane": "airplane", "boat": "ship",
            "lorry": "truck", "gray": "grey", "big": "large", "tiny": "small", "little": "small", "violet": "purple"}
# Hue bins in degrees (upper edges) of the chromatic colours; orange below ``BROWN_VALUE`` reads brown.
HUE_EDGES = ((15, "red"), (45, "orange"), (70, "yellow"), (170, "green"), (260, "blue"), (345, "purple"), (360, "red"))
BROWN_VALUE = 0.6
COLOURED_SHARE = 0.25
# The object's share of the frame: pixels far from the border's mean colour. Below SMALL it reads
# "small", above LARGE "large", in between neither.
SMALL, LARGE = 0.3, 0.7
MIN_OBJECT = 0.02  # below: no object stands out (a plain frame), no size word


def _hsv(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in degrees, saturation and value of [N,3,H,W] images in [0, 1]."""
    r, g, b = images.unbind(dim=1)
    value, _ = images.max(dim=1)
    chroma = value - images.min(dim=1).values
    safe = chroma.clamp_min(1e-6)
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    return hue, chroma / value.clamp_min(1e-6), value


def colour_words(images: torch.Tensor) -> list[str]:
    """The dominant colour name of each image ([N,3,H,W] in [0, 1]) from the central half of the
    frame, where the object usually is: the most common hue band of its coloured pixels when at
    least ``COLOURED_SHARE`` of them are coloured, else white, grey or black by brightness."""
    n, _, h, w = images.shape
    centre = images[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4]
    hue, saturation, value = _hsv(centre)
    category = torch.full_like(hue, -1, dtype=torch.long)
    chromatic = (saturation > 0.25) & (value >= 0.2)
    lower = 0.0
    for upper, name in HUE_EDGES:
        band = chromatic & (hue >= lower) & (hue < upper)
        if name == "orange":
            category[band & (value < BROWN_VALUE)] = COLOURS.index("brown")
            band = band & (value >= BROWN_VALUE)
        category[band] = COLOURS.index(name)
        lower = upper
    votes = torch.nn.functional.one_hot(category.flatten(1).clamp_min(0), len(COLOURS)) * chromatic.flatten(1)[..., None]
    votes = votes.sum(dim=1)
    coloured = chromatic.flatten(1).float().mean(dim=1) >= COLOURED_SHARE
    brightness = value.flatten(1).mean(dim=1)
    words = []
    for i in range(n):
        if coloured[i]:
            words.append(COLOURS[int(votes[i].argmax())])
        else:
            words.append("white" if brightness[i] > 0.7 else "black" if brightness[i] < 0.3 else "grey")
    return words


def size_words(images: torch.Tensor) -> list[str | None]:
    """"small", "large" or None per image: the share of pixels whose colour differs from the mean
    colour of the frame's border (a crude figure-ground split that is right often enough for a caption)."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2).mean(dim=2)
    share = ((images - border[:, :, None, None]).abs().amax(dim=1) > 0.2).float().mean(dim=(1, 2))
    return ["small" if MIN_OBJECT <= s < SMALL else "large" if s > LARGE else None for s in share.tolist()]


class PromptVocabulary:
    """Words a text-conditioned model knows: its class names, colours and sizes. ``encode`` turns
    prompts into word indices [N, MAX_WORDS] (0 pads), refusing words outside the vocabulary."""

    def __init__(self, class_names: list[str]):
        if not class_names:
            raise ValueError("a text-conditioned model needs class names (class sub-folders in --data)")
        self.class_names = [name.lower() for name in class_names]
        self.words = [*self.class_names, *COLOURS, *SIZES]
        self.index = {word: i + 1 for i, word in enumerate(self.words)}  # 0 is padding

    def __len__(self) -> int:
        return len(self.words) + 1

    def tokens(self, prompt: str) -> list[str]:
        """The prompt's known words in order; fillers ("a", "photo of") dropped, plurals and synonyms mapped."""
        known = []
        for word in re.findall(r"[a-z]+", prompt.lower()):
            if word in FILLER_WORDS:
                continue
            # As written, singular ("planes" -> "plane"), or plural for a class folder named so ("cat" -> "cats"); synonyms mapped.
            forms = (word, word[:-1] if word.endswith("s") else word, word + "s")
            candidates = [name for form in forms for name in (form, SYNONYMS.get(form, ""))]
            word = next((name for name in candidates if name in self.index), word)
            if word not in self.index:
                raise ValueError(f"unknown word {word!r} in prompt {prompt!r}; this model knows: {', '.join(self.words)}")
            known.append(word)
        if not known:
            raise ValueError(f"prompt {prompt!r} names nothing this model knows; it knows: {', '.join(self.words)}")
        if len(known) > MAX_WORDS:
            raise ValueError(f"prompt {prompt!r} has {len(known)} known words; at most {MAX_WORDS}")
        return known

    def encode(self, prompts: list[str]) -> torch.Tensor:
        ids = torch.zeros(len(prompts), MAX_WORDS, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            words = self.tokens(prompt)
            ids[row, : len(words)] = torch.tensor([self.index[w] for w in words])
        return ids

    def captions(self, images: torch.Tensor, labels: torch.Tensor, dropout: float, generator: torch.Generator) -> list[str]:
        """One caption per image (uint8 or [0, 1] [N,3,H,W]) with class ``labels``: "a [size] [colour]
        <class>", each attribute left out with probability ``dropout``."""
        unit = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        keep = torch.rand(len(images), 2, generator=generator) >= dropout
        captions = []
        for i, (colour, size) in enumerate(zip(colour_words(unit), size_words(unit))):
            words = [size if size and keep[i, 0] else None, colour if keep[i, 1] else None, self.class_names[int(labels[i])]]
            text = " ".join(w for w in words if w)
            captions.append(("an " if text[0] in "aeiou" else "a ") + text)
        return captions


class TextToImageGAN(ConditionalGAN):
    """A DCGAN whose condition is a prompt: the word indices go through a bag-of-words text encoder
    (mean of learnt word embeddings) into the generator next to z, and into a projection critic
    that judges image and prompt together (the cGAN's networks with a text encoder in place of the
    label table). Trained on captions made from the class folders (`PromptVocabulary.captions`);
    `sample_prompts` draws images for free-text prompts. Sampled by class index (`sample`), the
    prompt is the bare class name."""

    name = "text2image"
    defaults: dict[str, Any] = {**ConditionalGAN.defaults, "class_names": [], "attribute_dropout": 0.3}

    def build(self, for_training: bool) -> None:
        self.vocabulary = PromptVocabulary(list(self.config["class_names"]))
        if len(self.vocabulary.class_names) != int(self.config["n_classes"]):
            raise ValueError(f"{self.name}: {len(self.vocabulary.class_names)} class names for {self.config['n_classes']} classes")
        super().build(for_training)

    def condition_size(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocabulary)}

    def training_labels(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """Word indices of a caption per training image, drawn once per run from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        prompts = [caption for start in range(0, len(images), 1024)
                   for caption in self.vocabulary.captions(images[start : start + 1024], labels[start : start + 1024],
                                                          float(self.config["attribute_dropout"]), generator)]
        return self.vocabulary.encode(prompts)

    def _labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Word indices as they are; class indices become the prompt "a <class>"."""
        if labels.dim() == 2:
            return labels
        words = self.vocabulary.encode([f"a {self.vocabulary.class_names[int(i)]}" for i in labels.cpu()])
        return words.to(labels.device)

    @torch.no_grad()
    def sample_prompts(self, prompts: list[str], seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
        """One image [N,3,H,W] in [0, 1] per prompt (repeat a prompt for several); same seed, same images."""
        words = self.vocabulary.encode(prompts).to(self.device)  # refuses unknown words before any work
        self.check_sampling(None, truncation)
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        try:
            images = net(self.latent(len(prompts), torch.Generator().manual_seed(seed), truncation), words)
        finally:
            net.train(was_training)
        return to_unit(images).float().cpu()
