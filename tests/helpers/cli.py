"""Running the real ``matui`` CLI as a subprocess, as a user would: one runner and one spawner
that every CLI test shares, so each test file does not carry its own copy of the command line,
the state directory and the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload


def cli_env(state: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with ``XDG_STATE_HOME`` set to ``state`` (so runs are recorded
    under ``state / "matui"``, private to the test) when given, then ``env`` laid over it."""
    merged = dict(os.environ)
    if state is not None:
        merged["XDG_STATE_HOME"] = str(state)
    merged.update(env or {})
    return merged


@overload
def run_matui(
    *args: str | Path,
    state: Path | None = ...,
    env: Mapping[str, str] | None = ...,
    cwd: Path | None = ...,
    text: Literal[True] = ...,
    timeout: float = ...,
) -> subprocess.CompletedProcess[str]: ...


@overload
def run_matui(
    *args: str | Path,
    state: Path | None = ...,
    env: Mapping[str, str] | None = ...,
    cwd: Path | None = ...,
    text: Literal[False],
    timeout: float = ...,
) -> subprocess.CompletedProcess[bytes]: ...


def run_matui(
    *args: str | Path,
    state: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    text: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[Any]:
    """``python -m matui ARGS`` to its end, output captured (``str``, or ``bytes`` with
    ``text=False`` for tests that check the exact bytes written).

    ``state``: the ``XDG_STATE_HOME`` to use (usually ``tmp_path / "state"``); ``env``: variables
    laid over this process's environment; ``cwd``: the directory to run in; ``timeout``: seconds
    before :class:`subprocess.TimeoutExpired` fails the test instead of hanging it."""
    return subprocess.run(
        [sys.executable, "-m", "matui", *map(str, args)],
        capture_output=True,
        text=text,
        timeout=timeout,
        env=cli_env(state, env),
        cwd=cwd,
    )


def spawn_matui(
    *args: str | Path,
    state: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``python -m matui ARGS`` started and left running, for tests that act while it works
    (interrupt it, kill it, look at its host): stdout and stderr merged into one text pipe,
    unbuffered so each line arrives as it is printed. ``state`` and ``env`` as for
    :func:`run_matui`. The caller reads ``proc.stdout`` (e.g. with :func:`read_until`) and
    must wait for or kill the process."""
    return subprocess.Popen(
        [sys.executable, "-m", "matui", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(state, {"PYTHONUNBUFFERED": "1", **(env or {})}),
    )


def read_until(proc: subprocess.Popen[str], word: str) -> list[str]:
    """The lines ``proc`` printed up to and including the first one containing ``word`` (all
    of its output, if it ended first); the process is left running."""
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if word in line:
            break
    return seen
