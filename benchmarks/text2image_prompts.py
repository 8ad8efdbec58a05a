"""Does the text-conditioned zoo model draw what its prompt asks for?

    python benchmarks/text2image_prompts.py assets/zoo/text2image --n 200

For each prompt, ``n`` samples are judged two ways: the pinned CIFAR-10 classifier of
zoo_recognisability.py names their class (the share named as the prompt's class: *class
accuracy*), and the captioner the model was trained with (`colour_words`) names their colour
(the share of the prompt's colour: *colour match*). Each is set beside the same share for
samples of the bare class prompt ("a car"), so a colour word is credited only for what it adds,
and beside the real CIFAR-10 images of that class. Also writes a grid (one row per prompt) for
the docs. Writes benchmarks/results/text2image_prompts.{md,json} and docs/text2image_prompts.jpg.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_recognisability import PINNED_CLASSIFIER, load_classifier, probabilities  # noqa: E402

from tigas_core.config import atomic_write_text  # noqa: E402
from tigas_core.generators import load_for_sampling  # noqa: E402
from tigas_core.generators.common import ImageFolderTensors  # noqa: E402
from tigas_core.generators.text2image import COLOURS, colour_words  # noqa: E402
from tigas_core.io import to_uint8_image  # noqa: E402

PROMPTS = ["a red car", "a blue car", "a white ship", "a blue ship", "a brown horse", "a white horse", "a green frog",
           "a red truck", "a small bird", "a large bird"]
RESULTS = Path(__file__).resolve().parent / "results"


def judge(classifier, images: torch.Tensor, class_index: int, colour: str | None) -> dict:
    """Share of ``images`` ([N,3,H,W] in [0, 1]) the classifier names ``class_index``, and the captioner ``colour``."""
    row = {"class": float((probabilities(classifier, images).argmax(1) == class_index).mean())}
    if colour:
        row["colour"] = float(np.mean([c == colour for c in colour_words(images)]))
    return row


def prompt_row(model, classifier, data: ImageFolderTensors, prompt: str, n: int, seed: int) -> dict:
    """The prompt's samples, the bare class prompt's and the real images of the class, judged alike."""
    vocabulary = model.vocabulary
    words = vocabulary.tokens(prompt)
    class_name = next(w for w in words if w in vocabulary.class_names)
    colour = next((w for w in words if w in COLOURS), None)
    index = vocabulary.class_names.index(class_name)
    groups = {"prompted": model.sample_prompts([prompt] * n, seed=seed),
              "bare": model.sample_prompts([f"a {class_name}"] * n, seed=seed),
              "real": data.images[data.labels == index].float() / 255}
    return {"prompt": prompt, **{name: judge(classifier, images, index, colour) for name, images in groups.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--n", type=int, default=200, help="samples per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="../shared/data/real/cifar10", help="real CIFAR-10 class folders (the reference row)")
    parser.add_argument("--grid", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "text2image_prompts.jpg")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = load_for_sampling(args.checkpoint, expected_model="text2image")
    data = ImageFolderTensors(args.data, 32)
    classifier = load_classifier(data, PINNED_CLASSIFIER)
    rows = []
    for prompt in PROMPTS:
        rows.append(prompt_row(model, classifier, data, prompt, args.n, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    grid = torch.cat([model.sample_prompts([prompt] * 10, seed=args.seed + 1) for prompt in PROMPTS])
    tiles = [to_uint8_image(image) for image in grid]
    canvas = np.concatenate([np.concatenate(tiles[r * 10:(r + 1) * 10], axis=1) for r in range(len(PROMPTS))], axis=0)
    Image.fromarray(canvas).resize((canvas.shape[1] * 2, canvas.shape[0] * 2), Image.NEAREST).save(args.grid, quality=92)
    write_tables(rows, args)
    return 0


def write_tables(rows: list[dict], args: argparse.Namespace) -> None:
    def pct(value: float | None) -> str:
        return "" if value is None else f"{100 * value:.0f}%"

    lines = [f"# text2image: does a sample show what its prompt asks for? ({args.n} samples per prompt, seed {args.seed})", "",
             f"`python benchmarks/text2image_prompts.py {args.checkpoint} --n {args.n}`", "",
             "| prompt | class accuracy | bare class prompt | real photos of the class | colour match | bare class prompt | real photos |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [pct(r[group].get(key)) for key in ("class", "colour") for group in ("prompted", "bare", "real")]
        lines.append(f"| {r['prompt']} | " + " | ".join(cells) + " |")
    lines += ["", "Class accuracy: the pinned CIFAR-10 classifier names the prompt's class; colour match: the training "
              "captioner (`colour_words`) names the prompt's colour. 'Bare class prompt' is the same share for \"a <class>\", "
              "'real photos' for the real CIFAR-10 images of the class."]
    atomic_write_text(RESULTS / "text2image_prompts.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / "text2image_prompts.json", json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
