"""The engine is headless: importing all of it (every subpackage) must not pull in Textual, Rich,
the UI or the CLI. `lint-imports` checks the same statically; this checks what really loads."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import matui.engine


def test_engine_imports_no_textual() -> None:
    modules = [m.name for m in pkgutil.walk_packages(matui.engine.__path__, prefix="matui.engine.")]
    assert "matui.engine.build.run" in modules and "matui.engine.flags.gather" in modules, modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('textual', 'rich')\n"
        "             or m == 'matui.cli' or m.startswith('matui.ui'))\n"
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
