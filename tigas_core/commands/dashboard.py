"""Launch the Streamlit dashboard.

The dashboard lives in dashboards/dashboard.py at the repository root (a wheel carries a copy
inside the package; see tigas_core.resources), so this command replaces itself with `streamlit
run` on that file (exec, so signals such as Ctrl+C or a service manager's SIGTERM reach Streamlit
directly and nothing is left behind): headless, usage statistics off, settings handed over as
script arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tigas_core.commands import add_scorer_arguments
from tigas_core.resources import project_path

DASHBOARD_FILE = project_path("dashboards", "dashboard.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", help="folder with one sub-folder per generator, or a CSV index (path,generator); "
                        "default: the project's demo set")
    parser.add_argument("--real-name", default="real", help="name of the real reference sub-folder (default: real)")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    parser.add_argument("--address", default="localhost", help="address to bind (default: localhost)")
    parser.add_argument("--cache-dir", help="where scores are cached (default: $TIGAS_CACHE_DIR or ~/.cache/tigas)")
    add_scorer_arguments(parser)  # --weights default: $TIGAS_WEIGHTS, else the bundled weights


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The `streamlit run` command line for these arguments (separate so it can be checked without running it)."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(DASHBOARD_FILE),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--server.port", str(args.port),
        "--server.address", args.address,
        "--",
    ]
    if args.root:
        command.append(str(Path(args.root).expanduser().resolve()))
    weights = args.weights or os.environ.get("TIGAS_WEIGHTS")
    if weights:
        command += ["--weights", str(Path(weights).expanduser().resolve()) if Path(weights).expanduser().exists() else weights]
    command += ["--real-name", args.real_name, "--batch-size", str(args.batch_size), "--views", args.views,
                "--precision", args.precision, "--device", args.device]
    for option, value in (("--threshold", args.threshold), ("--threads", args.threads)):
        if value is not None:
            command += [option, str(value)]
    if args.cache_dir:
        command += ["--cache-dir", str(Path(args.cache_dir).expanduser().resolve())]
    return command


def run(args: argparse.Namespace) -> int:
    if not DASHBOARD_FILE.is_file():
        print(f"tigas dashboard: {DASHBOARD_FILE} not found; the dashboard ships with the source checkout and the wheel; reinstall TIGAS",
              file=sys.stderr)
        return 2
    if args.root and not Path(args.root).expanduser().exists():
        print(f"tigas dashboard: {args.root}: not found", file=sys.stderr)
        return 2
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    print(f"TIGAS dashboard on http://{args.address}:{args.port}", file=sys.stderr, flush=True)
    command = streamlit_command(args)
    os.execve(command[0], command, env)
