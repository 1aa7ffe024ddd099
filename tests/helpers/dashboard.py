"""Helpers for driving :class:`~matui.ui.app.MatuiApp` in tests: a config, jobs and probes that
need no host (display-only tests), screen text, and polling for app state with a timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.app import App
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.widget import Widget

from matui.engine.arch import Platform
from matui.engine.build.failure import FailureRecord, HostFacts, JobFacts, failure_record
from matui.engine.config import Config, HostConfig, ImageConfig
from matui.engine.flags import Flag, FlagKind, Severity
from matui.engine.plan import BuildJob
from matui.engine.probe import HostProbe
from matui.ui.app import MatuiApp
from matui.ui.widgets.arch_pane import ArchPane
from matui.ui.widgets.log_pane import LogPane

REPO = "registry.example/team/app"
"""A repository no test ever reaches: display-only tests never talk to a registry."""

TWO = ("amd64", "arm64")
FOUR = ("amd64", "arm64", "ppc64le", "s390x")


def fake_config(arches: Sequence[str] = TWO) -> Config:
    """One host per arch (documentation addresses, never dialled) and one image for all."""
    hosts = tuple(
        HostConfig(f"{arch}-1", arch, f"192.0.2.{10 + i}", user="build")
        for i, arch in enumerate(arches)
    )
    image = ImageConfig(
        REPO,
        ("1.0",),
        Path("/nonexistent/context"),
        tuple(Platform.parse(f"linux/{arch}") for arch in arches),
    )
    return Config(None, hosts, (image,))


def fake_jobs(
    arches: Sequence[str] = TWO,
    *,
    emulated: Sequence[str] = (),
    hosts: Mapping[str, str] | None = None,
) -> list[BuildJob]:
    """One job per arch, on host ``<arch>-1`` unless ``hosts`` says otherwise."""
    return [
        BuildJob(
            Platform.parse(f"linux/{arch}"),
            (hosts or {}).get(arch, f"{arch}-1"),
            arch in emulated,
            f"1.0-{arch}",
            f"{REPO}:1.0-{arch}",
        )
        for arch in arches
    ]


def fake_probes(arches: Sequence[str] = TWO) -> list[HostProbe]:
    return [
        HostProbe(
            f"{arch}-1",
            arch,
            reachable=True,
            uname={"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch),
            native_arch=arch,
            docker_version="26.1.4",
            docker_arch=arch,
            buildx_version="0.13.1",
            free_bytes=40 * 2**30,
        )
        for arch in arches
    ]


def warning_flag(arch: str = "arm64", host: str = "amd64-1") -> Flag:
    return Flag(
        FlagKind.ARCH_MISMATCH,
        Severity.WARNING,
        arch,
        f"linux/{arch} builds on {host} (amd64) under QEMU emulation (slower, and emulation "
        "bugs ship); add a native host for it",
    )


def info_flag(tag: str = "1.0") -> Flag:
    return Flag(
        FlagKind.TAG_OVERWRITE,
        Severity.INFO,
        tag,
        f"{REPO}:{tag} already holds index sha256:9e8d7c6b5a49; the push changes linux/amd64 "
        "— review the diff before confirming",
    )


def error_flag(tag: str = "1.0") -> Flag:
    return Flag(
        FlagKind.TAG_OVERWRITE,
        Severity.ERROR,
        tag,
        f"{REPO}:{tag} serves linux/s390x today and the new index would drop it; build "
        "linux/s390x again, or list it in retired_platforms if meant to go",
    )


def buildx_lines(arch: str, count: int, start: int = 0) -> list[str]:
    """buildx ``--progress=plain``-like lines: a step header, then compiler output."""
    lines = []
    for i in range(start, start + count):
        step = 5 + i // 100
        if i % 100 == 0:
            lines.append(f"#{step} [{arch} 3/4] RUN make -j8 stage-{step}")
        else:
            lines.append(f"#{step} {i * 0.013:.3f} cc -O2 -c src/{arch}/unit_{i:05d}.c")
    return lines


def failing_log(arch: str = "arm64", lines: int = 14) -> list[str]:
    """A buildx log whose ``[3/4] RUN`` step prints ``lines`` lines (one too long for any
    pane) and fails with exit code 3, buildx's framed excerpt and ``Dockerfile:4`` after it."""
    run = "RUN ./configure --enable-simd && make -j8 && ./selftest"
    log = [*buildx_lines(arch, 12), f"#7 [3/4] {run}"]
    for i in range(lines - 1):
        log.append(f"#7 {4.2 + i / 100:.3f} cc -O2 -c src/unit_{i:02d}.c -o obj/unit_{i:02d}.o")
    log.append(
        "#7 5.120 selftest: FAIL simd_roundtrip: expected 0x7f3a9c01 got 0x00000000 "
        "(lane 3 of 8, input vector /work/test/vectors/simd/roundtrip-0003.bin, seed 1234)"
    )
    log += [
        f'#7 ERROR: process "/bin/sh -c {run}" did not complete successfully: exit code: 3',
        "------",
        f" > [3/4] {run}:",
        "------",
        "Dockerfile:4",
        "--------------------",
        f"   4 | >>> {run}",
        "--------------------",
        f'ERROR: failed to solve: process "/bin/sh -c {run}" did not complete successfully: '
        "exit code: 3",
    ]
    return log


def fake_failure(arch: str = "arm64", *, emulated: bool = False, lines: int = 14) -> FailureRecord:
    """The engine's failure record of :func:`failing_log` (made by the engine's own code), with
    the host facts of :func:`fake_probes`' host and buildx's exit status 1."""
    host = "amd64-1" if emulated else f"{arch}-1"
    native = "amd64" if emulated else arch
    facts = JobFacts(declared_arch=native, native_arch=native, emulated=emulated)
    record = failure_record(failing_log(arch, lines), facts)
    return replace(
        record,
        host=HostFacts(host, native, native, emulated, "26.1.4", "0.13.1", 40 * 2**30),
        buildx_exit=1,
    )


def panes(app: MatuiApp) -> dict[str, ArchPane]:
    return {pane.arch: pane for pane in app.query(ArchPane)}


def toasts(app: App[Any]) -> list[str]:
    """The messages of the notifications on show (``run_test`` draws no toasts by default)."""
    return [str(n.message) for n in app._notifications]


def screen_text(app: App[Any]) -> str:
    """The active screen as plain text, one row a line (what a terminal would show)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def widget_text(app: App[Any], widget: Widget) -> str:
    """The screen's text inside ``widget``'s region, frames removed, words joined by one space:
    what the screen shows of it, apart from the widgets beside it on the same rows."""
    region = widget.region
    rows = screen_text(app).splitlines()[region.y : region.bottom]
    text = " ".join(row[region.x : region.right] for row in rows)
    return " ".join(text.translate(str.maketrans("│╭╮╰╯─┃┏┓┗┛━", "            ")).split())


async def wait_for(
    pilot: Pilot[Any],
    predicate: Callable[[], object],
    what: str,
    *,
    timeout: float = 10.0,
    step: float = 0.05,
    fail: Callable[[], object] | None = None,
) -> None:
    """Poll ``predicate`` (pausing the app between polls) until it is true, or fail at
    ``timeout`` or as soon as ``fail`` is true (e.g. the app reached a state it cannot leave)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        failed = fail is not None and fail()
        if failed or time.monotonic() > deadline:
            why = "gave up" if failed else f"timed out after {timeout:.0f}s"
            raise AssertionError(
                f"{why} waiting for {what}\nnotifications: {toasts(pilot.app)}\n"
                f"{screen_text(pilot.app)}"
            )
        await pilot.pause(step)


async def press_handled(pilot: Pilot[Any], node: DOMNode, key: str, action: str) -> None:
    """Press ``key`` and wait until ``node`` has run ``action_<action>`` for it: the positive
    signal that the key was handled, so a check that it changed nothing comes after it."""
    name = f"action_{action}"
    real = getattr(node, name)
    ran: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        try:
            return real(*args, **kwargs)
        finally:
            ran.append(True)

    setattr(node, name, spy)  # an instance attribute: Textual looks actions up by name
    try:
        await pilot.press(key)
        await wait_for(pilot, lambda: ran, f"{key} to run {action} on {node!r}")
    finally:
        delattr(node, name)


def _at_rest(app: App[Any]) -> bool:
    """Every log pane has flushed its lines, and a following pane shows its end (which can
    take one more tick: a scrollbar that appears moves the end)."""
    for view in app.query(LogPane):
        if view._dirty or (view.follow and view.scroll_offset.y != view.max_scroll_y):
            return False
    return True


async def settle(pilot: Pilot[Any]) -> None:
    """Let queued messages run and the log panes flush (50 ms ticks) and repaint."""
    await pilot.pause()
    await pilot.pause(0.12)
    deadline = time.monotonic() + 5
    while not _at_rest(pilot.app) and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await pilot.pause(0.06)  # one more tick: nothing left to do
    await pilot.pause()


async def sleep_until(predicate: Callable[[], object], what: str, timeout: float) -> None:
    """:func:`wait_for` for when no app is running (e.g. after it exited)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)
