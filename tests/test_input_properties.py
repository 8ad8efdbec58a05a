"""Property tests of the input layer: whatever a user passes, TIGAS answers with an image it can
score or a TIGASInputError, never another exception (hypothesis: random dtypes, shapes, ranges,
NaN/inf, file bytes and paths), and a short run of the decoder fuzz (benchmarks/fuzz_decoder.py)."""
from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tigas_core.io import MIN_SIDE, TIGASInputError, batch_to_rgb, check_threshold, load_image, read_image

SETTINGS = settings(max_examples=300, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SIDES = st.sampled_from([MIN_SIDE, 40, MIN_SIDE, 40, 0, 1, 3])  # mostly sides that are scored, some below
CHANNELS = st.sampled_from([3, 1, 4, 0, 2, 5])
IMAGE_SHAPES = st.one_of(
    st.tuples(SIDES, SIDES), st.tuples(CHANNELS, SIDES, SIDES), st.tuples(SIDES, SIDES, CHANNELS),  # [H,W] [C,H,W] [H,W,C]
    st.tuples(st.integers(0, 3), CHANNELS, SIDES, SIDES), st.tuples(st.integers(0, 3), SIDES, SIDES, CHANNELS),  # batches
)
ANY_RANK = st.lists(st.sampled_from([0, 1, 2, 3, 5]), max_size=6).map(tuple)  # small sides: 6 of 40 would be 33 GB
SHAPES = st.one_of(IMAGE_SHAPES, IMAGE_SHAPES, IMAGE_SHAPES, ANY_RANK)
SCALES = st.sampled_from([1.0, 255.0, 65535.0, -1.0, 2.0**40])  # [0, 1], 8-bit, 16-bit, negative, far out
VALUES = st.floats(0, 1) | st.floats(-2, 2) | st.sampled_from([math.nan, math.inf, -math.inf])
NUMPY_DTYPES = st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(endianness="?"), hnp.unsigned_integer_dtypes(endianness="?"),
                         hnp.floating_dtypes(endianness="?"))
OTHER_DTYPES = st.one_of(hnp.complex_number_dtypes(), hnp.datetime64_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes())
TORCH_DTYPES = st.sampled_from([
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64,
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.float8_e4m3fn, torch.complex64,
])


@st.composite
def pixels(draw) -> np.ndarray:
    """float64 values of any shape in one of the conventions users mix up, with NaN and inf among them."""
    return np.asarray(draw(hnp.arrays(np.float64, SHAPES, elements=VALUES)) * draw(SCALES))  # asarray: 0-d stays an array


def _cast(values: np.ndarray | torch.Tensor, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casting NaN, inf or out-of-range values to an integer type is undefined, and says so
        return values.astype(dtype) if isinstance(values, np.ndarray) else values.to(dtype)


NUMERIC_ARRAYS = st.builds(_cast, pixels(), NUMPY_DTYPES)
ARRAYS = st.one_of(NUMERIC_ARRAYS, NUMERIC_ARRAYS, NUMERIC_ARRAYS, OTHER_DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, SHAPES)))


@st.composite
def tensors(draw) -> torch.Tensor:
    """Any shape and torch dtype, values from every range (0-1, 0-255, 0-65535, negative, huge, NaN/inf)."""
    return _cast(torch.from_numpy(draw(pixels())), draw(TORCH_DTYPES))


FUZZ_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_decoder.py"


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_decoder", FUZZ_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz_module()
SEEDS = FUZZ.seed_files()


@st.composite
def mutated_files(draw) -> bytes:
    """A real JPEG, PNG, GIF or WebP made with PIL, mutated as the fuzz run mutates it."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return FUZZ.mutate(name, SEEDS[name], rng, list(SEEDS.values()))[0]


def _is_image(tensor: torch.Tensor) -> bool:
    return (tensor.dtype == torch.float32 and tensor.ndim == 3 and tensor.shape[0] == 3 and min(tensor.shape[1:]) >= MIN_SIDE
            and bool(torch.isfinite(tensor).all()) and 0.0 <= float(tensor.min()) <= float(tensor.max()) <= 1.0)


def _loads_or_refuses(source: object) -> None:
    """The property: a scoreable [3,H,W] float image in [0, 1], or a TIGASInputError; nothing else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an animation's note is a TIGASInputWarning, not an error
            image = load_image(source)
    except TIGASInputError as exc:
        assert exc.reason and str(exc).startswith(exc.source)
        return
    assert _is_image(image), (tuple(image.shape), image.dtype)


@SETTINGS
@given(ARRAYS)
def test_any_array_loads_or_is_refused(array):
    _loads_or_refuses(array)


@SETTINGS
@given(tensors())
def test_any_tensor_loads_or_is_refused(tensor):
    _loads_or_refuses(tensor)


@SETTINGS
@given(tensors())
def test_any_batch_converts_or_is_refused(tensor):
    try:
        images = batch_to_rgb(tensor, "batch")
    except TIGASInputError:
        return
    assert images.ndim == 4 and images.shape[1] == 3 and images.shape[0] > 0 and images.is_floating_point()
    assert bool(torch.isfinite(images).all()) and 0.0 <= float(images.min()) <= float(images.max()) <= 1.0


@SETTINGS
@given(st.one_of(st.binary(max_size=512), mutated_files()))
def test_any_bytes_decode_or_are_refused(data):
    _loads_or_refuses(data)


@SETTINGS
@given(st.text(max_size=300).filter(lambda text: not text.lower().startswith(("http://", "https://"))))
def test_any_path_text_loads_or_is_refused(text):
    _loads_or_refuses(text)


@SETTINGS
@given(mutated_files(), st.sampled_from(["a.png", "b.jpg", "c.gif", "d.webp", "noext"]))
def test_any_file_on_disk_loads_or_is_refused(tmp_path_factory, data, name):
    path = tmp_path_factory.mktemp("fuzzed") / name
    path.write_bytes(data)
    try:
        _, note = read_image(path)
    except TIGASInputError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(note, str)


@SETTINGS
@given(st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=20), st.none(), st.booleans()))
def test_any_threshold_is_a_probability_or_refused(value):
    try:
        threshold = check_threshold(value)
    except TIGASInputError as exc:
        assert exc.source == "threshold"
        return
    assert 0.0 <= threshold <= 1.0


@settings(max_examples=80, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(ARRAYS, tensors(), mutated_files(), st.lists(mutated_files(), max_size=3)))
def test_the_scorer_scores_or_refuses_anything(tigas, source):
    """The same property one level up: TIGAS.__call__ (a small model) on arrays, tensors, batches, bytes and lists."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = tigas(source)
    except TIGASInputError:
        return
    scores = torch.as_tensor(score).flatten()
    assert len(scores) and bool(((scores >= 0) & (scores <= 1)).all())


def test_a_short_fuzz_run_finds_no_crash():
    """benchmarks/fuzz_decoder.py's loop (full run: benchmarks/results/fuzz_decoder.txt), 1,500 mutants."""
    result = FUZZ.fuzz(1500, seed=7)
    assert result["counts"]["crash"] == 0, result["crashes"][:3]
    assert result["counts"]["scored"] > 0 and result["counts"]["TIGASInputError: corrupt or truncated image"] > 0
