"""The real dashboard in a real terminal: ``matui`` in tmux (120x40) against the rig.

Keys go in with ``send-keys``; the test reads the screen with ``capture-pane -p``, as an operator
would. Textual draws on stderr, which stays the terminal's. Each test has its own tmux server
(``-L``), config, repository and ``XDG_STATE_HOME``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

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


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout


DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; for i in 1 2 3; do echo "line $i"; done
"""


def test_dashboard_in_tmux_builds_then_publishes_a_verified_two_arch_index(
    rig: Rig, tmp_path: Path, tmux: Tmux
) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    state = tmp_path / "state"
    status = tmp_path / "exit-status"
    # The shell only writes down the exit status: #{pane_dead_status} was sometimes still
    # empty seconds after the app had ended (a zombie, not yet reaped by tmux 3.3). The app's
    # stdout and stderr stay the terminal's.
    script = 'exec 3>"$1"; shift; "$@" 3>&-; echo "$?" >&3'
    tmux.start(
        [
            "sh",
            "-c",
            script,
            "sh",
            str(status),
            sys.executable,
            "-m",
            "matui",
            "--config",
            str(config),
        ],
        {"XDG_STATE_HOME": str(state), "LANG": "C.UTF-8", "TERM": "screen-256color"},
    )
    # Started, and the hosts probed (probe on start).
    tmux.wait(lambda s: "ready: press b to build" in s, "the probe", timeout=60)

    tmux.keys("b")

    def both_built(screen: str) -> bool:
        return (
            "amd64 · succeeded" in screen
            and "arm64 · succeeded" in screen
            and "built: ready to publish" in screen.splitlines()[0]
        )

    screen = tmux.wait(both_built, "both panes' titles to say succeeded", timeout=BUILD)
    # arm64 built under emulation: the hosts table badges the host that emulates it (the
    # pane's title is cut at this width, so the host row is what says it in full).
    assert re.search(r"│ emu-1 +amd64 +amd64 +yes +EMULATED ", screen), screen

    tmux.keys("m")
    screen = tmux.wait(lambda s: "enter push" in s, "the publish confirmation", timeout=60)
    assert f"{repo}:1.0" in screen and "nothing (new tag)" in screen

    tmux.keys("Enter")
    screen = tmux.wait(lambda s: "PUBLISHED AND VERIFIED" in s, "the push", timeout=120)

    # The registry serves the two-arch index, its children the digests the run recorded.
    (record_path,) = (state / "matui" / "runs").glob("*/run.json")
    record = json.loads(record_path.read_text())
    built = {f"linux/{job['arch']}": job["digest"] for job in record["jobs"]}
    assert set(built) == {"linux/amd64", "linux/arm64"}
    assert all(str(d).startswith("sha256:") for d in built.values())
    raw = skopeo_raw(f"{repo}:1.0")
    index = json.loads(raw)
    served = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m["platform"]["os"] != "unknown"
    }
    assert served == built
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert f"index {digest}" in screen  # what the screen says is what the registry serves
    (result,) = record["publishes"][-1]["results"]
    assert result["outcome"] == "verified" and result["digest"] == digest

    # Close the dialog and quit: nothing runs, so q quits at once, exit status 0.
    # (Wait for the dialog to go before q: ESC then q at once would read as alt+q.)
    tmux.keys("Escape")
    screen = tmux.wait(lambda s: "PUBLISHED AND VERIFIED" not in s, "the dialog to close")
    assert "published" in screen.splitlines()[0] and f"index {digest[:19]}" in screen
    tmux.keys("q")
    assert tmux.exit_status(status) == "0", tmux.screen()
