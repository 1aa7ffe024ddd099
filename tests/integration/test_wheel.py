"""The built wheel carries the stylesheets, and the app starts from a fresh venv with them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APP_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import matui
    from matui.engine.config import load_config
    from matui.ui.app import MatuiApp
    from matui.ui.resources import stylesheet

    sheet = stylesheet()
    pkg = Path(matui.__file__).parent
    assert sheet.is_relative_to(pkg), f"stylesheet {sheet} is outside the package {pkg}"

    async def main() -> None:
        app = MatuiApp(load_config(Path(sys.argv[1])), probe_on_start=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            hosts = app.query_one("#hosts")
            # The installed sheet was read, and a rule only it has (not a Textual default) holds.
            assert any(str(sheet) in str(key) for key in app.stylesheet.source), sheet
            titlebar = app.query_one("#titlebar")
            assert titlebar.styles.height is not None and titlebar.styles.height.value == 1
            print("rows", hosts.row_count)
            await pilot.press("q")

    asyncio.run(main())
    print("app ok")
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (path,) = out.glob("matui-*.whl")
    return path


def test_wheel_contains_styles(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "matui/styles/matui.tcss" in names
    assert not any(name.startswith("tests/") for name in names)


def test_app_starts_headless_from_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-2000:]
    config = tmp_path / "matui.toml"
    config.write_text('[[hosts]]\nname = "a"\narch = "x86_64"\naddress = "127.0.0.1"\nport = 1\n')
    run = subprocess.run(
        [str(python), "-c", APP_SCRIPT, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "rows 1" in run.stdout and "app ok" in run.stdout
    cli = subprocess.run([str(venv / "bin" / "matui"), "--version"], capture_output=True, text=True)
    assert cli.stdout.strip() == "matui 0.1.0"
