"""The engine is headless: importing all of it must not pull in Textual (or the UI)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import matui.engine


def test_engine_imports_no_textual() -> None:
    modules = [f"matui.engine.{m.name}" for m in pkgutil.iter_modules(matui.engine.__path__)]
    assert len(modules) >= 5, modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m == 'textual' or m.startswith(('textual.', 'matui.ui')))\n"
        "print(' '.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"engine pulled in: {result.stdout}"


def test_cli_help_imports_neither_engine_deps_nor_textual() -> None:
    code = (
        "import sys\n"
        "from matui.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = ('textual', 'asyncssh', 'python_on_whales')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
