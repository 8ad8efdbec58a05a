"""Where the project's files outside the package are: the bundled weights, the app, the dashboard.

A source checkout keeps them at its root (``assets/``, ``app/``, ``dashboards/``); a wheel carries
copies inside the package (``tigas_core/assets`` and so on; see pyproject.toml), so that a plain
``pip install`` gets weights, ``tigas app`` and ``tigas dashboard`` too.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_path(*parts: str) -> Path:
    """The installed copy inside the package if there is one, else the source checkout's file.

    A checkout never has the copy (only wheels do), so edits in the checkout take effect without
    reinstalling.
    """
    packaged = PACKAGE_DIR.joinpath(*parts)
    return packaged if packaged.exists() else PACKAGE_DIR.parent.joinpath(*parts)
