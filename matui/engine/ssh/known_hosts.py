"""known_hosts lines, fingerprints, and the command that trusts a key (host keys are always
checked)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import asyncssh

SSH_PORT = 22


def known_hosts_pattern(address: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare on port 22, else ``[address]:port``."""
    return address if port == SSH_PORT else f"[{address}]:{port}"


def known_hosts_line(address: str, port: int, key: asyncssh.SSHKey) -> str:
    """The known_hosts line that trusts ``key`` for ``address:port`` (no comment, no newline)."""
    algorithm, data = key.export_public_key("openssh").decode("ascii").split()[:2]
    return f"{known_hosts_pattern(address, port)} {algorithm} {data}"


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:...`` as printed by ``ssh-keygen -lf``."""
    return key.get_fingerprint("sha256")


def _short_key_type(key_type: str) -> str:
    """``ssh-ed25519`` -> ``ed25519``: the name ssh-keyscan's ``-t`` and host key files use."""
    if "ed25519" in key_type:
        return "ed25519"
    if key_type.startswith("ecdsa") or "ecdsa" in key_type:
        return "ecdsa"
    if "rsa" in key_type:
        return "rsa"
    if "dss" in key_type:
        return "dsa"
    return key_type


def trust_command(
    address: str,
    port: int,
    key_type: str,
    line: str,
    known_hosts: Path,
    *,
    via: str | None = None,
) -> str:
    """A shell command an operator can run to trust a host key, after checking its fingerprint.

    ``ssh-keyscan`` cannot go through a jump host, so behind one the exact line is appended.
    """
    path = shlex.quote(str(known_hosts))
    parent = known_hosts.parent
    mkdir = "" if parent.is_dir() else f"mkdir -p -m 700 {shlex.quote(str(parent))} && "
    if via:
        return f"{mkdir}printf '%s\\n' {shlex.quote(line)} >> {path}"
    pattern = shlex.quote(known_hosts_pattern(address, port))
    key = _short_key_type(key_type)
    return (
        f"{mkdir}ssh-keyscan -p {port} -t {key} {shlex.quote(address)} >> {path}"
        f" && ssh-keygen -l -F {pattern} -f {path}"
    )


def append_known_host(known_hosts: Path, line: str) -> None:
    """Append one trusted-key line (from :class:`HostKeyUnknown`), creating the file 0600."""
    if "\n" in line or "\r" in line:
        raise ValueError("a known_hosts line must be one line")
    known_hosts = known_hosts.expanduser()
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as f:
        if f.tell() > 0:
            with open(known_hosts, "rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write(b"\n")
        f.write(line.encode("ascii") + b"\n")


# --------------------------------------------------------------------------------------------
