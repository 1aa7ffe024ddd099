"""The real dashboard in a real terminal: one tmux server of a test's own (``-L``), keys sent with
``send-keys`` and the screen read with ``capture-pane -p``, as an operator would; the rig tests
that drive ``matui`` this way share it.

Use the ``tmux`` fixture by importing it into the test module (``from tests.helpers.tmux import
tmux as tmux``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

WIDTH, HEIGHT = 120, 40
BUILD = 240.0  # seconds: arm64 builds under QEMU on the rig


@dataclass
class Tmux:
    """One tmux server of our own, and the session the app runs in."""

    socket: str
    session: str = "matui"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # The server (started by the first command) passes its environment on to the app.
        # COLUMNS and LINES must not be in it: they override the terminal's size (readline,
        # loaded in this process by pytest, exports them), and the app would draw at 80x24.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        return subprocess.run(
            ["tmux", "-u", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
            env=env,
        )

    def start(self, command: list[str], env: dict[str, str]) -> None:
        settings = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
        # remain-on-exit set before the session starts: the dead pane keeps the app's last
        # words and its exit status.
        self.run(
            "start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
            "new-session", "-d", "-s", self.session, "-x", str(WIDTH), "-y", str(HEIGHT),
            *settings, *command,
        )  # fmt: skip

    def start_matui(self, config: Path, state: Path, status: Path, cwd: Path | None = None) -> None:
        """Start ``matui --config config`` (state under ``state``, in ``cwd`` if given) and wait
        for the probe to end. The shell around it only writes the app's exit status to
        ``status`` (read it with :meth:`exit_status`): #{pane_dead_status} was sometimes still
        empty seconds after the app had ended (a zombie, not yet reaped by tmux 3.3). The app's
        stdout and stderr stay the terminal's."""
        script = 'exec 3>"$1"; cd "$2"; shift 2; "$@" 3>&-; echo "$?" >&3'
        matui = [sys.executable, "-m", "matui", "--config", str(config)]
        self.start(
            ["sh", "-c", script, "sh", str(status), str(cwd or "."), *matui],
            {"XDG_STATE_HOME": str(state), "LANG": "C.UTF-8", "TERM": "screen-256color"},
        )
        self.wait(lambda s: "ready: press b to build" in s, "the probe", timeout=60)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session).stdout

    def pane(self, fmt: str) -> str:
        return self.run("display-message", "-p", "-t", self.session, fmt).stdout.strip()

    def exit_status(self, file: Path, timeout: float = 30.0) -> str:
        """Wait for the app to end: the exit status its shell wrote to ``file``."""
        deadline = time.monotonic() + timeout
        while not file.is_file() or not file.read_text().strip():
            assert time.monotonic() < deadline, f"the app did not end:\n{self.screen()}"
            time.sleep(0.2)
        return file.read_text().strip()

    def wait(self, predicate: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        """Poll the screen until ``predicate(screen)``; fail with the screen on timeout or when
        the app has exited."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if self.pane("#{pane_dead}") == "1" or time.monotonic() > deadline:
                why = "the app exited" if self.pane("#{pane_dead}") == "1" else "timed out"
                raise AssertionError(f"{why} waiting for {what}; the screen:\n{screen}")
            time.sleep(0.25)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux(f"matui-test-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield server
    finally:
        socket = server.run("display-message", "-p", "#{socket_path}", check=False).stdout
        server.run("kill-server", check=False)
        if socket.strip():
            Path(socket.strip()).unlink(missing_ok=True)  # tmux 3.3 leaves it behind
