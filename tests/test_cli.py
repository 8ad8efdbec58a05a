"""`tigas score` end to end in a subprocess: lines, summary, CSV/JSON/plot, exit codes, resume."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import natural_like
from PIL import Image

from tigas_core.hub import save_pretrained
from tigas_core.model import create_tigas_model


def tigas_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tigas_core.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_command():
    proc = tigas_cli("--help")
    assert proc.returncode == 0
    for command in ("score", "explain", "train", "evaluate", "generate", "zoo", "fid", "hub", "app", "dashboard"):
        assert command in proc.stdout


@pytest.mark.parametrize("option, value", [("views", "jitter"), ("precision", "bf16")])
def test_score_options_match_the_api_and_are_named(option, value, weights_dir, tmp_path):
    from tigas_core.api import TIGAS

    pixels = np.random.default_rng(9).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    pixels[:, 45:] = pixels[:, 45:].mean(axis=(0, 1), dtype=np.float64).astype(np.uint8)  # noise left, flat right
    image = tmp_path / "one.png"
    Image.fromarray(pixels).save(image)
    out = tmp_path / "m.json"
    proc = tigas_cli("score", str(image), "--weights", str(weights_dir), f"--{option}", value, "--json", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(f"[weights: checkpoint {weights_dir}; {option}: {value}]")
    payload = json.loads(out.read_text())
    assert payload[option] == value
    row = payload["results"][0]
    expected = TIGAS(weights_dir, device="cpu", **{option: value})(str(image))
    assert row["score"] == pytest.approx(expected, abs=1e-5)
    assert row["score"] != pytest.approx(TIGAS(weights_dir, device="cpu")(str(image)), abs=1e-5)
    refused = tigas_cli("score", str(image), f"--{option}", "nonsense")
    assert refused.returncode == 2 and f"--{option}: invalid choice: 'nonsense'" in refused.stderr


def test_score_folder_writes_csv_json_and_plot(weights_dir, make_image, tmp_path):
    for i in range(4):
        make_image(f"imgs/{i}.png", seed=i)
    make_image("imgs/nested/n.jpg", seed=7)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"nope")
    (tmp_path / "imgs" / "nested" / "prompt.json").write_text("{}")
    out = tmp_path / "out"
    proc = tigas_cli("score", str(tmp_path / "imgs"), "--recursive", "--weights", str(weights_dir), "--batch-size", "2",
                     "--csv", str(out / "s.csv"), "--json", str(out / "s.json"), "--plot", str(out / "s.html"))
    assert proc.returncode == 0, proc.stderr
    assert "Scored 5 of 6 images (1 failed)" in proc.stdout
    assert f"ERROR  {tmp_path / 'imgs' / 'bad.png'}: not an image" in proc.stdout
    assert "skipped 1 file(s) that are not images by extension (.json: 1)" in proc.stderr
    table = pd.read_csv(out / "s.csv", keep_default_na=False)
    assert len(table) == 6 and (table["error"] != "").sum() == 1
    payload = json.loads((out / "s.json").read_text())
    assert payload["summary"]["scored"] == 5 and payload["summary"]["failed"] == 1
    scored = table[table["error"] == ""]["score"].astype(float)
    assert abs(payload["summary"]["mean"] - scored.mean()) < 1e-6
    for _, row in table[table["error"] == ""].iterrows():
        assert f"{float(row['score']):.4f}" in proc.stdout
    assert "plotly" in (out / "s.html").read_text().lower()
    assert not (out / "s.csv.partial").exists()


def test_nothing_scored_exits_non_zero(weights_dir, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    proc = tigas_cli("score", str(tmp_path / "x.jpg"), "--weights", str(weights_dir))
    assert proc.returncode == 1
    assert "Scored 0 of 1" in proc.stdout and "empty file" in proc.stdout
    proc = tigas_cli("score", str(tmp_path / "nothing_here"), "--weights", str(weights_dir))
    assert proc.returncode == 1


def interrupted_run(partial: Path, rows: pd.DataFrame, weights: Path) -> None:
    """What a run killed after ``rows`` leaves behind: the partial CSV with each file's state, and
    the note of the scorer that wrote it."""
    from tigas_core.api import TIGAS
    from tigas_core.commands.score import file_state, scorer_note
    from tigas_core.score_cache import scorer_identity

    pd.DataFrame([{**row, **file_state(row["path"])} for row in rows.to_dict("records")]).to_csv(partial, index=False)
    scorer = scorer_identity(TIGAS(str(weights), device="cpu"))
    scorer_note(partial).write_text(json.dumps({"scorer": scorer}))


def test_resume_skips_rows_already_written_and_only_those_that_still_hold(weights_dir, make_image, tmp_path):
    paths = [make_image(f"r/{i}.png", seed=i) for i in range(4)]
    partial, out = tmp_path / "res.csv.partial", tmp_path / "res.csv"
    first = tigas_cli("score", str(paths[0]), str(paths[1]), "--weights", str(weights_dir), "--csv", str(tmp_path / "first.csv"))
    assert first.returncode == 0
    done = pd.read_csv(tmp_path / "first.csv", keep_default_na=False)
    interrupted_run(partial, done, weights_dir)
    with partial.open("a") as handle:  # a kill or a full disk cut the last row short
        handle.write(f"{paths[2]},0.12")
    proc = tigas_cli("score", str(tmp_path / "r"), "--weights", str(weights_dir), "--csv", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert str(paths[0]) not in proc.stdout and str(paths[1]) not in proc.stdout  # kept, not scored again
    assert str(paths[2]) in proc.stdout and str(paths[3]) in proc.stdout  # the cut-short row was scored anew
    table = pd.read_csv(out, keep_default_na=False)
    assert sorted(table["path"]) == sorted(map(str, paths)) and not partial.exists()

    interrupted_run(partial, done, weights_dir)
    make_image("r/0.png", seed=99)  # changed since the interrupted run
    other = tmp_path / "other"
    other.mkdir()
    make_image("other/x.png", seed=5)
    proc = tigas_cli("score", str(paths[0]), str(paths[1]), str(other / "x.png"), "--weights", str(weights_dir),
                     "--csv", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert str(paths[0]) in proc.stdout and str(paths[1]) not in proc.stdout
    assert len(pd.read_csv(out)) == 3

    interrupted_run(partial, done, weights_dir)
    save_pretrained(create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32), tmp_path / "w2")
    proc = tigas_cli("score", str(paths[0]), str(paths[1]), "--weights", str(tmp_path / "w2"), "--csv", str(out), "--resume")
    assert proc.returncode == 0 and "other weights, views or precision" in proc.stderr
    assert str(paths[0]) in proc.stdout and str(paths[1]) in proc.stdout  # other weights: every file scored again
    resumed = pd.read_csv(out)
    assert resumed["score"].dtype == float and resumed["perceptual"].dtype == float


def test_bad_input_is_one_clear_line_and_exit_status_2(weights_dir, make_image, tmp_path):
    image = str(make_image("ok.png", seed=1))
    cases = [
        (["--weights", str(tmp_path / "nodir")], "nodir: no such weights folder or file"),
        (["--weights", str(weights_dir), "--device", "gpu"], "unknown device 'gpu'"),
        (["--weights", str(weights_dir), "--device", "cuda:99"], "usable CUDA device(s)"),
        (["--weights", str(weights_dir), "--resume"], "--resume needs --csv"),
        (["--batch-size", "0"], "--batch-size: expected a positive integer, got 0"),  # argparse, before any model loads
        (["--threshold", "2"], "--threshold: expected a number in [0, 1], got 2.0"),
        (["--plot", str(tmp_path / "p.svg")], "a plot is written as .html or .png, not .svg"),
    ]
    for extra, message in cases:
        proc = tigas_cli("score", image, *extra)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (extra, proc.stderr)
    proc = tigas_cli("-v", "score", image, "--weights", str(tmp_path / "nodir"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "WeightsNotFoundError" in proc.stderr



def test_explain_writes_an_offline_report_per_image_and_goes_on_after_a_bad_file(weights_dir, make_image, tmp_path):
    from tigas_core.api import TIGAS

    first = make_image("a/photo.png", seed=1)
    second = make_image("b/photo.png", seed=2)  # same name in another folder: its own report
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "reports"
    proc = tigas_cli("explain", str(tmp_path / "a"), str(second), "--weights", str(weights_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"ERROR  {tmp_path / 'a' / 'broken.png'}: corrupt or truncated image" in proc.stdout
    assert "Explained 2 of 3 images" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["explanations.json", "photo.html", "photo_2.html", "plotly.min.js"]
    page = (out / "photo.html").read_text()
    assert 'src="plotly.min.js"' in page and "Where the score is most sensitive" in page
    assert "Radial power profile" in page and "photo.png: score" in page
    assert len((out / "plotly.min.js").read_text()) > 1_000_000  # the library itself, so the page opens offline
    results = json.loads((out / "explanations.json").read_text())["results"]
    tigas = TIGAS(weights_dir)
    explained = [row for row in results if not row["error"]]
    assert [row["report"] for row in explained] == ["photo.html", "photo_2.html"]
    for row, path in zip(explained, (first, second)):
        assert abs(row["score"] - tigas(path)) < 1e-5


def test_report_names_never_collide():
    from tigas_core.commands.explain import report_names

    names = report_names([Path("x/a.jpg"), Path("x/a.png"), Path("x/a_2.png"), Path("y/a.png"), "https://h/p/a.jpg?s=1"])
    assert names == ["a.html", "a_2.html", "a_2_2.html", "a_3.html", "a_4.html"] and len(set(names)) == len(names)


def test_score_takes_urls_next_to_files(weights_dir, make_image, served_folder):
    from tigas_core.api import TIGAS

    _, base = served_folder
    local = make_image("served/photo.png")
    proc = tigas_cli("score", f"{base}/photo.png", f"{base}/gone.png", "--weights", str(weights_dir))
    assert proc.returncode == 0, proc.stderr
    assert f"{TIGAS(weights_dir)(local):.4f}" in proc.stdout and f"{base}/photo.png" in proc.stdout
    assert f"ERROR  {base}/gone.png: download failed (HTTP 404" in proc.stdout


def test_a_file_name_that_is_not_utf8_gets_its_row_instead_of_ending_the_run(weights_dir, make_image, tmp_path):
    """Archives from other systems carry names in other encodings; Python keeps those bytes as
    surrogates, which CSV, JSON and Arrow refuse. The row shows them as \\xNN escapes."""
    import os

    folder = tmp_path / "mixed"
    make_image("mixed/ok.png", seed=1)
    odd = os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9.png")  # Latin-1 e-acute: not UTF-8
    Image.fromarray(natural_like(64, 64, 2)).save(odd, format="PNG")
    proc = tigas_cli("score", str(folder), "--weights", str(weights_dir), "--csv", str(tmp_path / "s.csv"),
                     "--json", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert sorted(Path(p).name for p in table["path"]) == ["caf\\xe9.png", "ok.png"] and (table["error"] == "").all()
    assert len(json.loads((tmp_path / "s.json").read_text())["results"]) == 2


def test_a_closed_pipe_stops_the_lines_not_the_run_and_outputs_never_overwrite_inputs(weights_dir, make_image, tmp_path):
    for i in range(200):  # enough lines to fill the output buffer more than once
        make_image(f"many/{i:03d}.png", size=(40, 40), seed=i)
    out = tmp_path / "all.csv"
    proc = subprocess.Popen([sys.executable, "-m", "tigas_core.cli", "score", str(tmp_path / "many"), "--weights", str(weights_dir),
                             "--csv", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # what `| head` does once it has its lines
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert len(pd.read_csv(out)) == 200

    image = make_image("keep.png", seed=1)
    before = image.read_bytes()
    proc = tigas_cli("score", str(image), "--weights", str(weights_dir), "--csv", str(image))
    assert proc.returncode == 2 and "is one of the images to score" in proc.stderr and image.read_bytes() == before


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: a read-only one, or /sys for root (who writes anywhere else)."""
    import os
    import tempfile

    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        tempfile.TemporaryFile(dir="/sys").close()
    except OSError:
        return Path("/sys")
    pytest.skip("no folder that root cannot write in")


def test_outputs_into_missing_or_unwritable_folders(weights_dir, make_image, tmp_path):
    image = str(make_image("ok.png", seed=1))
    out = tmp_path / "new" / "deeper" / "s.csv"
    proc = tigas_cli("score", image, "--weights", str(weights_dir), "--csv", str(out), "-q")
    assert proc.returncode == 0 and out.is_file()
    assert f"note: --csv {out}: created folder {out.parent}" in proc.stderr  # said at once, so a typo shows
    locked = _unwritable_folder(tmp_path)
    for option, name in (("--csv", "s.csv"), ("--json", "s.json"), ("--plot", "s.html")):
        proc = tigas_cli("score", image, "--weights", str(weights_dir), option, str(locked / name))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"{option} {locked / name}: cannot write in {locked} (" in proc.stderr  # the user's path, no temp file
        assert ".tmp" not in proc.stderr and "Scored" not in proc.stdout  # refused before any scoring
    proc = tigas_cli("score", image, "--weights", str(weights_dir), "--csv", str(locked / "sub" / "s.csv"))
    assert proc.returncode == 2 and f"--csv {locked / 'sub' / 's.csv'}: cannot create folder {locked / 'sub'}" in proc.stderr


def test_rows_say_why_a_path_fails_and_an_animation_gets_a_note(weights_dir, make_image, tmp_path):
    folder = tmp_path / "mixed"
    make_image("mixed/good.png", seed=2)
    (folder / "loop.png").symlink_to(folder / "loop.png")
    frames = [Image.fromarray(natural_like(48, 48, seed)) for seed in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "rows.csv"
    proc = tigas_cli("score", str(folder), "--weights", str(weights_dir), "--csv", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"ERROR  {folder / 'loop.png'}: symlink loop (too many levels of symbolic links)" in proc.stdout
    assert f"{folder / 'anim.gif'}  (note: 3 frames (animated or multi-page): scored frame 1 only)" in proc.stdout
    table = pd.read_csv(out, keep_default_na=False).set_index("path")
    assert table.loc[str(folder / "anim.gif"), "note"] == "3 frames (animated or multi-page): scored frame 1 only"
    assert table.loc[str(folder / "good.png"), "note"] == "" and table.loc[str(folder / "good.png"), "error"] == ""
