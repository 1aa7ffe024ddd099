"""A private registry for a test that needs one to go away: the same ``docker-registry`` the rig
runs (see ``start_registry`` in ``rig/rig``), on a free loopback port with its own config and
storage under the test's tmp dir. The rig's shared registry is never stopped by a test."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers.rig import free_port

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


class PrivateRegistry:
    """``docker-registry serve`` on ``127.0.0.1:<free port>``; storage survives a stop, so a
    test can take it down and bring the same content back up with :meth:`start`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.address = f"127.0.0.1:{free_port()}"
        self.config = root / "config.yml"
        self.log = root / "registry.log"
        self._process: subprocess.Popen[bytes] | None = None
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
        )

    def start(self, timeout: float = 20) -> None:
        assert self._process is None, "already running"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"private registry on {self.address} did not come up:\n"
                    + self.log.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)

    def answers(self) -> bool:
        """``GET /v2/`` answers 200."""
        try:
            with _DIRECT.open(f"http://{self.address}/v2/", timeout=2) as resp:
                return int(resp.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Stop it and wait until it has exited (its port is closed then)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
