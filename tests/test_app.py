"""The Gradio app end to end: `tigas app` in a subprocess on a free port, real HTTP.

gradio_client checks that /score and /explain return what TIGAS computes on the same file, and a
headless Debian chromium (playwright) uploads files through the page, waits for the table and the
plots and checks the per-file messages for bad uploads.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("gradio")
from conftest import readme_python_blocks  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from tigas_core.api import TIGAS, verdict  # noqa: E402
from tigas_core.hub import save_pretrained  # noqa: E402
from tigas_core.io import DEFAULT_VIEWS  # noqa: E402
from tigas_core.local_server import LocalServer, free_port  # noqa: E402
from tigas_core.model import BRANCHES, create_tigas_model  # noqa: E402

PASTE_SCRIPT = """(bytes) => {
  const file = new File([new Uint8Array(bytes)], "pasted.png", { type: "image/png" });
  const data = new DataTransfer();
  data.items.add(file);
  document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
}"""
MAX_FILE_MB = 0.1  # small cap so a ~190 KB noise PNG counts as "too big", and a ~770 KB one as far too big
STARTUP_TIMEOUT_S = 150


def _save_png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    save_pretrained(create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32), folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Two real images, a corrupt PNG, a text file with an image name, one file just over the size
    cap and one far over it (past the 4x guard Gradio once had), and an animated GIF."""
    from skimage import data as skdata

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96]
    smooth = np.stack([xx * 2.5, yy * 3.0, (xx + yy) * 1.4], axis=-1) + rng.normal(0, 6, (80, 96, 3))
    photo = np.asarray(Image.fromarray(skdata.astronaut()).resize((96, 96), Image.BILINEAR))
    files = {
        "photo": _save_png(photo, folder / "astronaut.png"),
        "smooth": _save_png(np.clip(smooth, 0, 255).astype(np.uint8), folder / "gradient.png"),
        "big": _save_png(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), folder / "huge_noise.png"),
        "huge": _save_png(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), folder / "far_too_big.png"),
    }
    frames = [Image.fromarray(np.roll(photo, shift, axis=1)) for shift in (0, 8, 16)]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:], duration=100)
    files["animated"] = folder / "moving.gif"
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    (folder / "broken.png").write_bytes(buffer.getvalue()[:400])
    files["corrupt"] = folder / "broken.png"
    (folder / "notes.png").write_text("this is not an image\n")
    files["text"] = folder / "notes.png"
    assert MAX_FILE_MB * 2**20 < files["big"].stat().st_size and files["huge"].stat().st_size > 4 * MAX_FILE_MB * 2**20
    return files


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    """Where the app's stdout and stderr go (the tests look for tracebacks in it)."""
    return tmp_path_factory.mktemp("server") / "app.log"


@pytest.fixture(scope="module")
def server(weights_dir, server_log):
    """`tigas app` on a free port; yields its URL and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    tigas_cmd = shutil.which("tigas", path=str(Path(sys.executable).parent)) or "tigas"
    command = [tigas_cmd, "app", "--weights", str(weights_dir), "--port", str(port), "--share", "false",
               "--max-file-mb", str(MAX_FILE_MB), "--concurrency", "2"]
    url = f"http://127.0.0.1:{port}/"
    with LocalServer(command, url + "config", server_log, env, STARTUP_TIMEOUT_S):
        yield url


@pytest.fixture(scope="module")
def tigas(weights_dir) -> TIGAS:
    """The app's scorer: the same weights with every face's default views."""
    return TIGAS(str(weights_dir), device="cpu", views=DEFAULT_VIEWS)


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server, verbose=False)


def test_score_endpoint_matches_tigas(client, tigas, images):
    for key in ("photo", "smooth"):
        result = client.predict(handle_file(str(images[key])), api_name="/score")
        direct = tigas(str(images[key]), return_features=True)
        assert result["file"] == images[key].name
        assert result["score"] == pytest.approx(float(direct["score"]), abs=1e-5)
        for j, branch in enumerate(BRANCHES):
            assert result["components"][branch] == pytest.approx(float(direct["components"][branch]), abs=1e-5)
            assert result["branch_weights"][branch] == pytest.approx(float(direct["branch_weights"][0, j]), abs=1e-5)
        assert sum(result["branch_weights"].values()) == pytest.approx(1.0, abs=1e-4)
        assert result["verdict"] == verdict(result["score"], result["threshold"])


def test_score_endpoint_threshold_moves_verdict(client, images):
    low = client.predict(handle_file(str(images["photo"])), 0.0, api_name="/score")
    high = client.predict(handle_file(str(images["photo"])), 1.0, api_name="/score")
    assert (low["verdict"], high["verdict"]) == ("likely real", "likely generated")
    assert low["score"] == high["score"]


def test_explain_endpoint_matches_tigas(client, tigas, images):
    result = client.predict(handle_file(str(images["photo"])), 0.5, True, api_name="/explain")
    direct = tigas.explain(str(images["photo"]))
    assert result["file"] == "astronaut.png"
    assert result["score"] == pytest.approx(direct.score, abs=1e-5)
    assert result["verdict"] == verdict(result["score"], result["threshold"])
    for branch in BRANCHES:
        assert result["components"][branch] == pytest.approx(float(direct.components[branch]), abs=1e-5)
        assert result["branch_weights"][branch] == pytest.approx(float(direct.branch_weights[branch]), abs=1e-5)
    assert np.allclose(np.asarray(result["spectrum"]), direct.spectrum, atol=1e-4)
    assert np.allclose(np.asarray(result["radial_profile"]), direct.radial_profile, atol=1e-4)
    saliency = np.asarray(result["saliency"])
    assert saliency.shape == direct.saliency.shape and 0.0 <= saliency.min() <= saliency.max() <= 1.0

    summary = client.predict(handle_file(str(images["photo"])), api_name="/explain")  # maps are opt-in
    assert "spectrum" not in summary and "saliency" not in summary
    assert summary["score"] == result["score"] and len(summary["reference_profile"]) == len(direct.reference_profile)


@pytest.mark.parametrize(
    ("key", "reason"), [("corrupt", "corrupt"), ("text", "not an image"), ("big", "too large (0.2 MiB > 0.1 MiB per file)"),
                        ("huge", "too large (0.8 MiB > 0.1 MiB per file)")]
)
def test_bad_file_gets_clear_error_without_server_paths(client, images, key, reason):
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(images[key])), api_name="/score")
    message = str(info.value)
    assert images[key].name in message and reason in message
    assert "/tmp" not in message and "gradio" not in message.lower()


def test_bad_threshold_is_one_clean_message_and_no_traceback(client, images, server_log):
    for threshold, shown in ((5.0, "got 5.0"), (-0.1, "got -0.1"), ("high", "got 'high'")):
        for endpoint in ("/score", "/explain"):
            with pytest.raises(Exception, match=re.escape(f"threshold: expected a number in [0, 1], {shown}")):
                client.predict(handle_file(str(images["photo"])), threshold, api_name=endpoint)
    assert "Traceback" not in server_log.read_text()


def test_an_animation_is_scored_on_its_first_frame_and_says_so(client, tigas, images):
    result = client.predict(handle_file(str(images["animated"])), api_name="/score")
    assert result["note"] == "3 frames (animated or multi-page): scored frame 1 only"
    with Image.open(images["animated"]) as animation:
        assert result["score"] == pytest.approx(float(tigas(animation.convert("RGB"))), abs=1e-5)
    assert client.predict(handle_file(str(images["photo"])), api_name="/score")["note"] == ""
    assert client.predict(handle_file(str(images["animated"])), api_name="/explain")["note"] == result["note"]


def test_readme_gradio_client_example_runs_against_the_app(server, images, tmp_path, monkeypatch):
    """The README's gradio_client block as written (its keyword names too), against this app."""
    block = next(b for b in readme_python_blocks() if "gradio_client" in b)
    Image.open(images["photo"]).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(block.replace("http://127.0.0.1:7860/", server), "README.md", "exec"), names)
    assert isinstance(names["client"], Client)


def test_only_the_four_named_endpoints_are_public(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/explain", "/generate", "/score", "/style_transfer"]


def caption_scores(gallery: list[dict]) -> list[float]:
    return [float(item["caption"]) for item in gallery]


def test_generate_endpoint_returns_the_library_samples_scored_best_first(client, tigas):
    from tigas_core.generators.showcase import sample_grid_with_scores

    gallery, summary = client.predict("cgan", 6, 3, 0.8, "", api_name="/generate")
    direct = sample_grid_with_scores("cgan", n=6, seed=3, truncation=0.8, scorer=tigas, device="cpu")
    assert caption_scores(gallery) == pytest.approx([round(sample.score, 3) for sample in direct], abs=1.5e-3)
    assert caption_scores(gallery) == sorted(caption_scores(gallery), reverse=True)
    assert all(Path(item["image"]).is_file() for item in gallery)
    assert "6 samples of **cgan** (seed 3, truncation 0.8)" in summary
    with pytest.raises(Exception, match="a prompt applies to text-conditioned models"):
        client.predict("cgan", 2, 0, 1.0, "a red car", api_name="/generate")


def test_generate_endpoint_draws_text2image_samples_for_a_prompt(client):
    gallery, summary = client.predict("text2image", 4, 0, 1.0, "a small red car", api_name="/generate")
    assert len(gallery) == 4 and 'for "a small red car"' in summary
    with pytest.raises(Exception, match="unknown word 'spaceship'"):
        client.predict("text2image", 2, 0, 1.0, "a spaceship", api_name="/generate")


def test_style_transfer_endpoint_returns_the_result_and_its_score(client, tigas, images):
    result, summary = client.predict(handle_file(str(images["photo"])), handle_file(str(images["smooth"])), 20, 10.0, 64,
                                     api_name="/style_transfer")
    painted = Image.open(result)
    assert min(painted.size) == 64
    score = float(re.search(r"TIGAS score of the result: \*\*([0-9.]+)\*\*", summary).group(1))
    assert score == pytest.approx(float(tigas(np.asarray(painted))), abs=2e-3)  # the image returned is the one scored
    before, after = (float(x) for x in re.search(r"style loss ([0-9.e+-]+) → ([0-9.e+-]+)", summary).groups())
    assert after < before
    with pytest.raises(Exception, match="give a content image and a style image"):
        client.predict(handle_file(str(images["photo"])), None, 10, 10.0, 64, api_name="/style_transfer")


def test_file_cap_and_duplicate_names(tigas, images):
    """Files beyond the per-request cap get a message; same-named uploads stay apart."""
    from tigas_core.commands.app import _load_app_module

    app = _load_app_module()
    paths = [str(images["photo"]), str(images["smooth"]), str(images["photo"])]
    records, scored = app.score_paths(tigas, paths, app.AppLimits(max_files=2), threshold=0.5)
    assert [r["file"] for r in records] == ["astronaut.png", "gradient.png", "astronaut.png (2)"]
    assert records[0]["score"] == pytest.approx(float(tigas(paths[0])), abs=1e-5)
    assert records[2]["score"] is None and "at most 2 files" in records[2]["error"]
    assert set(scored) == {"astronaut.png", "gradient.png"}
    table = app.results_table(records)
    assert list(table["file"][:2]) == sorted(scored, key=lambda n: -next(r["score"] for r in records if r["file"] == n))


def test_files_dropped_before_are_not_scored_again(tigas, images):
    from tigas_core.commands.app import _load_app_module

    app = _load_app_module()
    first, second = str(images["photo"]), str(images["smooth"])
    records, scored = app.score_paths(tigas, [first], app.AppLimits(), threshold=0.5)
    earlier = {**records[0], "score": 0.123}  # marked, so a reused record can be told from a rescored one
    records, scored = app.score_paths(tigas, [first, second], app.AppLimits(), threshold=0.5, known={first: earlier})
    assert [r["score"] for r in records] == [0.123, pytest.approx(float(tigas(second)), abs=1e-5)]
    assert scored == {"astronaut.png": first, "gradient.png": second}
    assert records[0]["verdict"] == "likely generated"  # the verdict follows the threshold, reused or not


def test_the_page_names_its_weights_and_the_baseline_says_what_it_misjudges(weights_dir):
    from tigas_core.commands.app import _load_app_module

    app = _load_app_module()
    given = app.weights_label(TIGAS(weights_dir))
    assert given == f"checkpoint {weights_dir.name} (64 px views)"  # a name, not a path on the server
    bundled = app.weights_label(TIGAS())
    assert bundled.startswith("the bundled baseline") and "misjudges" in bundled
    jittered = app.weights_label(TIGAS(weights_dir, views="jitter"))
    assert jittered == f"checkpoint {weights_dir.name} (64 px views, each image averaged over 18 shifted views of it and its mirror)"


def test_app_script_help_runs():
    """The Space entry point parses its options (python app/app.py)."""
    app_file = Path(__file__).resolve().parents[1] / "app" / "app.py"
    result = subprocess.run([sys.executable, str(app_file), "--help"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr
    assert "--weights" in result.stdout and "--threads" in result.stdout and "--share" in result.stdout
    assert "--repo-id" not in result.stdout  # a deprecated alias of --weights OWNER/NAME@REVISION: works, hidden
    assert "--views" in result.stdout and "(default: single)" in " ".join(result.stdout.split())  # every face's default


@pytest.mark.browser
def test_browser_upload_scores_plots_and_bad_files(server, tigas, images, tmp_path, chromium):
    from playwright.sync_api import expect

    expected = {key: float(tigas(str(images[key]))) for key in ("photo", "smooth")}
    uploads = [str(images[key]) for key in ("photo", "smooth", "corrupt", "text", "big")]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        page.goto(server)
        page.locator("#tigas-upload input[type=file]").set_input_files(uploads)

        status = page.locator("#tigas-status")
        expect(status).to_contain_text("2 of 5 file(s) scored")
        expect(status).to_contain_text("broken.png")
        expect(status).to_contain_text("corrupt")
        expect(status).to_contain_text("notes.png")
        expect(status).to_contain_text("not an image")
        expect(status).to_contain_text("huge_noise.png")
        expect(status).to_contain_text("too large")

        table = page.locator("#tigas-table")
        for key, score in expected.items():
            expect(table).to_contain_text(images[key].name)
            expect(table).to_contain_text(f"{score:.4f}".rstrip("0"))
        top = max(expected, key=expected.get)
        expect(page.locator("#tigas-summary")).to_contain_text(images[top].name)
        expect(page.locator("#tigas-branches")).to_contain_text("Branch scores and fusion weights")
        expect(page.locator("#tigas-branches")).to_contain_text("perceptual")
        expect(page.locator("#tigas-spectrum")).to_contain_text("log-magnitude spectrum")
        expect(page.locator("#tigas-profile")).to_contain_text("natural-image reference")
        expect(page.locator("#tigas-saliency")).to_contain_text("saliency overlay")
        expect(page.locator("#tigas-csv")).to_be_enabled()
        assert "/tmp/" not in page.locator("body").inner_text()

        # Thumbnails of the scored files, best first, captioned with score and verdict; a click inspects one.
        ranked = sorted(expected, key=expected.get, reverse=True)
        thumbnails = page.locator("#tigas-thumbnails img")
        expect(thumbnails).to_have_count(2)
        for key in ranked:
            expect(page.locator("#tigas-thumbnails")).to_contain_text(f"{expected[key]:.3f}")
            expect(page.locator("#tigas-thumbnails")).to_contain_text(images[key].name)
        thumbnails.nth(1).click()
        expect(page.locator("#tigas-summary")).to_contain_text(images[ranked[1]].name)

        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        assert (tmp_path / "app.png").stat().st_size > 10_000

        with page.expect_download() as download:
            page.locator("#tigas-csv").click()
        results = pd.read_csv(download.value.path()).set_index("file")
        assert list(results.index[:2]) == [images[k].name for k in sorted(expected, key=expected.get, reverse=True)]
        assert len(results) == 5
        for key, score in expected.items():
            assert results.loc[images[key].name, "score"] == pytest.approx(score, abs=1e-5)
        assert "too large" in results.loc["huge_noise.png", "error"] and np.isnan(results.loc["broken.png", "score"])

        # The JSON panel runs the same /score endpoint as gradio_client.
        page.locator("#tigas-api").get_by_text("JSON API").click()
        page.locator("#tigas-api-file input[type=file]").set_input_files(str(images["smooth"]))
        page.locator("#tigas-api-score").click()
        output = page.locator("#tigas-api-output")
        expect(output).to_contain_text("branch_weights")
        shown = re.search(r'"score"\s*:\s*([-+.\deE]+)', output.inner_text())  # the JSON view puts each token on a line
        assert shown and float(shown.group(1)) == pytest.approx(expected["smooth"], abs=1e-5)

        # Moving the threshold re-labels the scored files without scoring them again.
        threshold = page.locator("#tigas-threshold input[type=number]")
        threshold.fill("0")
        threshold.press("Enter")
        expect(table).not_to_contain_text("uncertain")
        expect(table).to_contain_text("likely real")

        # Pasting an image anywhere on the page adds it to the uploads and scores it.
        page.evaluate(PASTE_SCRIPT, list(images["photo"].read_bytes()))
        expect(status).to_contain_text("3 of 6 file(s) scored")
        expect(table).to_contain_text("pasted.png")
        expect(table).to_contain_text(f"{expected['photo']:.4f}".rstrip("0"))

        # An example click loads and scores it.
        example = page.locator("#tigas-examples button").first
        example_name = example.inner_text().strip()
        example.click()
        expect(status).to_contain_text("of 1 file(s) scored")
        expect(table).not_to_contain_text("pasted.png")
        expect(page.locator("#tigas-summary")).to_contain_text(example_name)
        expect(page.locator("#tigas-branches")).to_contain_text("Branch scores and fusion weights")
        page.screenshot(path=str(tmp_path / "app_example.png"), full_page=True)


DROP_SCRIPT = """([bytes, bigBytes]) => {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(bytes)], "astronaut.png", { type: "image/png" }));
  data.items.add(new File([new Uint8Array(bigBytes)], "sixty_mb.png", { type: "image/png" }));
  const zone = document.querySelector("#tigas-upload .upload-container [data-testid=upload-text]");
  zone.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: data }));
}"""


@pytest.mark.browser
def test_browser_oversized_files_get_their_own_message_and_the_rest_is_scored(server, tigas, images, tmp_path, chromium):
    """Files far over the per-file limit, dropped or picked with good ones: each gets the app's own
    message, the good files are scored (Gradio's own limit once failed the whole drop)."""
    from playwright.sync_api import expect

    photo = float(tigas(str(images["photo"])))
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        page.goto(server)
        page.wait_for_selector("#tigas-upload .upload-container", state="attached")
        page.evaluate(f"([bytes, size]) => ({DROP_SCRIPT})([bytes, new Uint8Array(size)])",
                      [list(images["photo"].read_bytes()), 60 * 2**20])
        status, table = page.locator("#tigas-status"), page.locator("#tigas-table")
        expect(status).to_contain_text("1 of 2 file(s) scored")
        expect(status).to_contain_text("sixty_mb.png: file too large (60.0 MiB > 0.1 MiB per file)")
        expect(table).to_contain_text(f"{photo:.4f}".rstrip("0"))
        expect(page.locator("#tigas-summary")).to_contain_text("astronaut.png")
        page.screenshot(path=str(tmp_path / "oversized_drop.png"), full_page=True)

        page.reload()
        picked = [str(images[key]) for key in ("huge", "photo", "big", "animated")]
        page.locator("#tigas-upload input[type=file]").set_input_files(picked)
        expect(status).to_contain_text("2 of 4 file(s) scored")
        expect(status).to_contain_text("far_too_big.png: file too large (0.8 MiB > 0.1 MiB per file)")
        expect(status).to_contain_text("huge_noise.png: file too large (0.2 MiB > 0.1 MiB per file)")
        expect(status).to_contain_text("moving.gif: 3 frames (animated or multi-page): scored frame 1 only")
        expect(table).to_contain_text(f"{photo:.4f}".rstrip("0"))
        assert "Error" not in page.locator("body").inner_text()


def test_the_per_file_limit_is_at_most_the_library_cap(capsys):
    """--max-file-mb above io.MAX_FILE_BYTES would promise files the library then refuses."""
    import argparse

    from tigas_core.commands.app import _load_app_module

    parser = argparse.ArgumentParser(prog="tigas app")
    _load_app_module().add_arguments(parser)
    assert parser.parse_args(["--max-file-mb", "100"]).max_file_mb == 100
    for bad in ("500", "0", "ten"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--max-file-mb", bad])
    assert "--max-file-mb: expected a number of MiB, got 'ten'" in capsys.readouterr().err
