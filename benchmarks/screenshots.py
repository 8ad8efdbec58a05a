"""Screenshots of the real app and dashboard, at a desktop and a phone width, for the docs.

    python benchmarks/screenshots.py            # -> docs/screenshots/{app,dashboard}_{1400,390}.png
    python benchmarks/screenshots.py --faces dashboard   # one face; the dashboard also shoots its
                                                         # Distributions and ROC tabs (dashboard_{distributions,roc}_*)

Both faces run as `tigas app` / `tigas dashboard` child processes with the bundled weights, and
Debian's headless chromium (playwright) drives them: the app scores the examples the project makes
itself (`tigas_core.demo.example_images`: crops of scikit-image's photographs and one sample of
each bundled zoo model), then draws "a red car" in the Generate tab and paints one example photo in
the style of another in the Style transfer tab; the dashboard its Summary, Distributions and ROC tabs
on the demo set (`tigas_core.demo.build_demo_set`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tigas_core.demo import example_images
from tigas_core.local_server import LocalServer, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
WIDTHS = {"desktop": 1400, "phone": 390}
DASHBOARD_TABS = {"Summary": "", "Distributions": "_distributions", "Threshold & ROC": "_roc"}  # tab -> file name part
FACES = ("app", "dashboard")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
       "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}


def tigas_command() -> str:
    return shutil.which("tigas", path=str(Path(sys.executable).parent)) or "tigas"


def shoot_app(browser, work: Path, out: Path) -> list[Path]:
    from playwright.sync_api import expect

    images = [str(p) for p in example_images(work / "examples")]
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [tigas_command(), "app", "--port", str(port), "--share", "false"]
    shots = []
    with LocalServer(command, url + "config", work / "app.log", ENV, 300):
        for width in WIDTHS.values():
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.set_default_timeout(120_000)
            expect.set_options(timeout=120_000)
            page.goto(url)
            page.locator("#tigas-upload input[type=file]").set_input_files(images)
            expect(page.locator("#tigas-status")).to_contain_text(f"{len(images)} of {len(images)} file(s) scored")
            expect(page.locator("#tigas-branches")).to_contain_text("Branch scores")
            page.wait_for_timeout(1500)  # plots finish drawing
            shots.append(out / f"app_{width}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            shots.append(shoot_generate_tab(page, out / f"app_generate_{width}.png"))
            shots.append(shoot_style_transfer_tab(page, images[:2], out / f"app_style_transfer_{width}.png"))
            page.close()
    return shots


def shoot_generate_tab(page, path: Path) -> Path:
    """The Generate tab: the text-conditioned model drawing "a red car", samples with their scores."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Generate").click()
    model = page.locator("#tigas-gen-model input")
    model.click()
    page.get_by_role("option", name="text2image").click()  # typing + Enter did not always commit the choice
    expect(model).to_have_value("text2image")
    page.locator("#tigas-gen-prompt textarea").fill("a red car")
    page.locator("#tigas-gen-button").click()
    expect(page.locator("#tigas-gen-summary")).to_contain_text('samples of text2image for "a red car"')
    page.wait_for_timeout(1500)  # thumbnails load
    page.screenshot(path=str(path), full_page=True)
    return path


def shoot_style_transfer_tab(page, images: list[str], path: Path) -> Path:
    """The Style transfer tab: two of the example photos, the result and its score (default settings)."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Style transfer").click()
    page.locator("#tigas-st-content input[type=file]").set_input_files(images[0])
    page.locator("#tigas-st-style input[type=file]").set_input_files(images[1])
    page.locator("#tigas-st-button").click()
    expect(page.locator("#tigas-st-summary")).to_contain_text("TIGAS score of the result")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(path), full_page=True)
    return path


def shoot_dashboard(browser, work: Path, out: Path) -> list[Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [tigas_command(), "dashboard", "--port", str(port), "--cache-dir", str(work / "cache")]  # no ROOT: its demo
    shots = []
    with LocalServer(command, url + "_stcore/health", work / "dashboard.log", ENV, 300):
        for width in WIDTHS.values():
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.set_default_timeout(300_000)
            page.goto(url)
            page.get_by_text("Summary").first.wait_for()
            page.locator("[data-testid=stDataFrame]").first.wait_for()
            page.wait_for_timeout(3000)
            for tab, name in DASHBOARD_TABS.items():
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(3000)  # plots finish drawing
                fit_viewport_to_page(page, width)
                shots.append(out / f"dashboard{name}_{width}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
            page.close()
    return shots


def fit_viewport_to_page(page, width: int) -> None:
    """Streamlit scrolls inside its own container, so a full-page screenshot shows only the
    viewport: grow the viewport to the content's height instead (then let the plots redraw)."""
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": width, "height": max(1000, int(height))})
    page.wait_for_timeout(1500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "screenshots")
    parser.add_argument("--faces", nargs="+", choices=FACES, default=list(FACES), help="which faces to shoot")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            shots = [shot for face, shoot in zip(FACES, (shoot_app, shoot_dashboard)) if face in args.faces
                     for shot in shoot(browser, Path(tmp), args.out)]
        finally:
            browser.close()
    for shot in shots:
        print(shot)


if __name__ == "__main__":
    main()
