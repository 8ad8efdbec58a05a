"""List the functions longer than a limit (default 60 lines), longest first.

    python benchmarks/long_functions.py [--limit 60] [PATH ...]

A function's length is its lines from ``def`` (decorators excluded) to its last line, nested
functions included. tests/test_architecture.py asserts that nothing outside tests/ and
benchmarks/ is listed, so a function that grows past the limit is split while it is still fresh.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ("tigas_core", "app", "dashboards", "hubconf.py")
LIMIT = 60


def python_files(paths: list[Path]) -> list[Path]:
    """The .py files named, and those below the folders named."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def long_functions(paths: list[Path], limit: int = LIMIT) -> list[tuple[int, str]]:
    """(lines, "file:line name") of every function or method longer than ``limit`` lines."""
    found = []
    for file in python_files(paths):
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    where = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file
                    found.append((length, f"{where}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help=f"files or folders (default: {' '.join(DEFAULT_PATHS)})")
    parser.add_argument("--limit", type=int, default=LIMIT, help="longest allowed function, in lines (default: %(default)s)")
    args = parser.parse_args(argv)
    found = long_functions(args.paths or [ROOT / p for p in DEFAULT_PATHS], args.limit)
    for length, name in found:
        print(f"{length:5d}  {name}")
    print(f"{len(found)} function(s) over {args.limit} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
