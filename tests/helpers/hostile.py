"""Builder hosts that answer with terminal escape sequences: a private sshd whose sessions find
fake tools first on their PATH (``docker``, ``tar``, ``uname``), each printing :data:`HOSTILE`,
and a check that text holds no control character a terminal would act on."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.rig import Rig, free_port
from tests.helpers.sshd import Sshd

HOSTILE = (
    "clip\x1b]52;c;SGVsbG8=\x07 clear\x1b[2J csi8\x9b31m dcs\x1bPq#0;2;0;0;0\x1b\\ "
    "osc8\x9d8;;http://x\x9c end"
)
"""OSC 52 (writes the clipboard), CSI 2J (clears the screen), an 8-bit CSI, a DCS string and an
8-bit OSC: what a hostile host or build step prints."""

HOSTILE_WORD = "v0.13.1\x1b]52;c;SGVsbG8=\x07\x1b[2J\x9b31m"
"""The same, with no space: survives parsers that take one word (a version)."""


def unsafe(text: str) -> list[str]:
    """Characters a terminal would act on: ESC, every other C0 control but TAB and LF, DEL, C1."""
    return sorted(
        {ch for ch in text if (ord(ch) < 0x20 and ch not in "\t\n") or 0x7F <= ord(ch) <= 0x9F}
    )


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _tool(path: Path, body: str) -> None:
    path.write_bytes(("#!/bin/sh\n" + body).encode())
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def tools_broken_docker(bindir: Path) -> None:
    """``docker`` fails with HOSTILE on stderr; ``uname -m`` answers HOSTILE."""
    _tool(
        bindir / "docker", f"printf '%s\\n' {_sh_quote('Cannot connect: ' + HOSTILE)} >&2\nexit 1\n"
    )
    _tool(bindir / "uname", f"printf '%s\\n' {_sh_quote('x86_64 ' + HOSTILE)}\n")


def tools_lying_versions(bindir: Path) -> None:
    """``docker`` answers as a working engine whose version strings carry escape sequences."""
    version = (
        '{"Server":{"Version":"20.10\\u001b]52;c;SGVsbG8=\\u0007\\u001b[2J\\u009b31m",'
        '"Arch":"amd64","Os":"linux"}}'
    )
    buildx = _sh_quote(f"github.com/docker/buildx {HOSTILE_WORD} x")
    _tool(
        bindir / "docker",
        'case "$*" in\n'
        f"  version*) printf '%s\\n' {_sh_quote(version)};;\n"
        f"  *buildx*version*) printf '%s\\n' {buildx};;\n"
        "  *) exit 1;;\n"
        "esac\n",
    )


def tools_failing_upload(bindir: Path) -> None:
    """``tar`` reads the context, then fails with HOSTILE on stderr (the context upload)."""
    _tool(
        bindir / "tar",
        f"cat >/dev/null\nprintf '%s\\n' {_sh_quote('tar: ' + HOSTILE)} >&2\nexit 2\n",
    )


@dataclass
class HostileHost:
    """A private sshd and the directory of fake tools its sessions find first on their PATH."""

    sshd: Sshd
    bindir: Path

    def stop(self) -> None:
        """Stop the sshd (waiting for its listener to be gone) and remove the tools."""
        pid = self.sshd.listener if self.sshd.pidfile.exists() else None
        self.sshd.stop()
        deadline = time.monotonic() + 10
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        shutil.rmtree(self.bindir.parent, ignore_errors=True)


def hostile_host(rig: Rig, tmp_path: Path, tools: Callable[[Path], None]) -> HostileHost:
    """An sshd like the rig's amd64 host on a port of its own whose sessions run ``tools``'
    fakes first on their PATH; the caller stops it."""
    # Under /tmp, not tmp_path: the rig's user must reach the tools (pytest's dirs are 0700).
    top = Path(tempfile.mkdtemp(prefix="matui-hostile-"))
    top.chmod(0o755)
    bindir = top / "bin"
    bindir.mkdir(mode=0o755)
    tools(bindir)
    port = free_port()
    home = tmp_path / f"sshd-{port}"
    home.mkdir()
    pidfile = home / "sshd.pid"
    base = (rig.sshd_dir("amd64") / "sshd_config").read_text()
    lines = []
    for line in base.splitlines():
        if line.startswith(("Port ", "PidFile ", "ClientAliveInterval")):
            continue
        if line.startswith("SetEnv "):
            line += f" PATH={bindir}:/usr/local/bin:/usr/bin:/bin"
        lines.append(line)
    config = home / "sshd_config"
    config.write_text("\n".join([f"Port {port}", f"PidFile {pidfile}", *lines]) + "\n")
    key = (rig.sshd_dir("amd64") / "ssh_host_ed25519_key.pub").read_text().split()
    known_hosts = home / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key[0]} {key[1]}\n")
    server = Sshd(port, pidfile, config, known_hosts, home / "sshd.log")
    server.start()
    return HostileHost(server, bindir)


def host_block(name: str, rig: Rig, server: Sshd) -> str:
    """A ``[[hosts]]`` table (arch amd64) for ``server``."""
    return f"""
[[hosts]]
name = "{name}"
arch = "amd64"
address = "127.0.0.1"
port = {server.port}
user = "{rig.user}"
identity = "{rig.key}"
known_hosts = "{server.known_hosts}"
"""


@contextlib.contextmanager
def hostile_hosts(rig: Rig, tmp_path: Path) -> Iterator[dict[str, HostileHost]]:
    """The three hostile hosts the escape-sequence tests drive: ``broken`` (docker fails with
    the sequences), ``liar`` (versions and arch carry them), ``upload`` (tar's error does);
    stopped on exit."""
    made: dict[str, HostileHost] = {}
    try:
        for name, tools in (
            ("broken", tools_broken_docker),
            ("liar", tools_lying_versions),
            ("upload", tools_failing_upload),
        ):
            made[name] = hostile_host(rig, tmp_path, tools)
        yield made
    finally:
        for host in made.values():
            host.stop()
