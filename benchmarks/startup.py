"""Start-up: ``matui --help``, and the dashboard's first paint with 8 hosts.

Side by side in one run, alternating, each in a fresh process, median of several repetitions:

* ``matui --help`` (the installed entry point) against a bare ``python -c pass`` of the same
  interpreter (target: <= 0.15 s);
* the dashboard (``MatuiApp``, headless, 120x40, a config of 8 hosts and one image, no probe on
  start, no run to resume) from process start to the end of its first screen update, against a
  minimal Textual app (one ``Static``) measured the same way (target: <= 1 s).

    .venv/bin/python -m benchmarks.startup
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, emit, median, parser

SIZE = (120, 40)


def matui_exe() -> str:
    exe = Path(sys.executable).with_name("matui")
    if not exe.exists():
        raise SystemExit(
            f"{exe} is missing: install matui into this environment (pip install -e .)"
        )
    return str(exe)


def child_env(**extra: str) -> dict[str, str]:
    """As a user runs matui: bytecode cached (an install compiles it; the first run here writes
    it), whatever PYTHONDONTWRITEBYTECODE says in this environment."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def run_time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=child_env())
    return time.perf_counter() - start


def paint_time(kind: str) -> float:
    """Seconds from launching a process to the end of its app's first screen update."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.startup", "--paint", kind],
            capture_output=True,
            text=True,
            check=True,
            env=child_env(XDG_STATE_HOME=tmp),
        )
    painted = float(out.stdout.split()[-1])
    return painted - start


def eight_hosts() -> Any:
    from matui.engine.arch import Platform
    from matui.engine.config import Config, HostConfig, ImageConfig

    arches = ["amd64", "arm64", "ppc64le", "s390x", "riscv64", "386", "arm/v7", "arm/v6"]
    hosts = tuple(
        HostConfig(f"builder-{i + 1}", arch, f"192.0.2.{10 + i}", user="build")
        for i, arch in enumerate(arches)
    )
    image = ImageConfig(
        "registry.example/team/app",
        ("1.0",),
        Path("/nonexistent/context"),
        tuple(Platform.parse(f"linux/{arch}") for arch in arches),
    )
    return Config(None, hosts, (image,))


def paint(kind: str) -> None:
    """In a fresh process: build the app, run it headless, print when its first paint ended."""
    if kind == "matui":
        from matui.ui.app import MatuiApp

        app: Any = MatuiApp(
            eight_hosts(),
            probe_on_start=False,
            resume_on_start=False,
            state_root=Path(os.environ["XDG_STATE_HOME"]),
        )
    else:
        app = bare_app()
    print(paint_app(app, SIZE))


def bare_app() -> Any:
    """The baseline: a minimal Textual app (one ``Static``)."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")

    return Bare()


def paint_app(app: Any, size: tuple[int, int], screen: str | None = None) -> float:
    """Run ``app`` headless at ``size`` until its first screen update ends (of a screen of
    class ``screen`` when given); when it ended (``time.time()``)."""
    painted: list[float] = []
    original = app._display

    def display(shown: Any, renderable: Any) -> None:
        original(shown, renderable)
        if screen is not None and type(shown).__name__ != screen:
            return
        if renderable is not None and not painted:
            # Charge what a terminal driver would encode and write.
            render = getattr(renderable, "render_segments", None)
            if render is not None:
                render(app.console)
            painted.append(time.time())

    app._display = display  # before the app starts: its very first update counts

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            while not painted:
                await pilot.pause(0.001)

    asyncio.run(main())
    return painted[0]


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--paint", choices=["matui", "bare"], help=argparse_hidden())
    args = p.parse_args()
    if args.paint:
        paint(args.paint)
        return
    reps = args.reps or (3 if args.small else 11)
    exe = matui_exe()
    help_t: list[float] = []
    pass_t: list[float] = []
    matui_paint: list[float] = []
    bare_paint: list[float] = []
    # Warm the page cache and write the .pyc files first.
    run_time([exe, "--help"])
    paint_time("matui")
    paint_time("bare")
    for _ in range(reps):
        help_t.append(run_time([exe, "--help"]))
        pass_t.append(run_time([sys.executable, "-c", "pass"]))
    for _ in range(max(3, reps // 2)):
        matui_paint.append(paint_time("matui"))
        bare_paint.append(paint_time("bare"))
    h, b = median(help_t), median(pass_t)
    emit(
        Figure(
            name="startup_help",
            what="`matui --help`, process start to exit",
            value=h,
            unit="s",
            baseline="python -c pass",
            baseline_value=b,
            ratio=h / b,
            ratio_text="matui time / bare interpreter time",
            target="<= 0.15 s",
            met=h <= 0.15,
            detail=f"median of {reps}; min {min(help_t):.3f} s",
        )
    )
    m, n = median(matui_paint), median(bare_paint)
    emit(
        Figure(
            name="startup_first_paint",
            what=f"dashboard with 8 hosts, process start to first screen update ({SIZE[0]}x"
            f"{SIZE[1]}, headless)",
            value=m,
            unit="s",
            baseline="bare Textual app",
            baseline_value=n,
            ratio=m / n,
            ratio_text="matui time / bare Textual time",
            target="<= 1 s",
            met=m <= 1.0,
            detail=f"median of {len(matui_paint)}; min {min(matui_paint):.3f} s",
        )
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
