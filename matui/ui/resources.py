"""Where the shipped stylesheets are: in the wheel (matui/styles) or a checkout (styles/)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def stylesheet(name: str = "matui.tcss") -> Path:
    for folder in (_PACKAGE / "styles", _PACKAGE.parent / "styles"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"stylesheet {name} not found in {_PACKAGE / 'styles'} or {_PACKAGE.parent / 'styles'}; "
        "the installation is incomplete, reinstall matui"
    )
