"""The one place that turns intent into a command line for a builder host.

The command string an SSH client sends is run by the remote user's *login shell*, which may be
bash, dash, fish or tcsh; their quoting rules differ. So the login shell only ever sees one fixed
wrapper made of characters that mean the same in all of them::

    sh -c 'eval "$(printf %s BASE64 | base64 -d)"'

and the real POSIX ``sh`` script travels base64-encoded inside it. Values inside the script are
quoted with :func:`shlex.quote`; control characters are refused before quoting, because no
legitimate ref, path or build argument contains one.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

_CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}


class UnsafeValue(ValueError):
    """A value that must never reach a remote command."""


def check_value(value: str, what: str = "value") -> str:
    """Refuse control characters (newline, NUL, ESC ...) in a value bound for a remote command."""
    bad = sorted({f"0x{ord(ch):02x}" for ch in value if ch in _CONTROL})
    if bad:
        raise UnsafeValue(f"{what} {value!r} contains control characters ({', '.join(bad)})")
    return value


def quote(value: str, what: str = "value") -> str:
    return shlex.quote(check_value(value, what))


def join(argv: Iterable[str]) -> str:
    """Quote every word of an argv for POSIX sh."""
    return " ".join(quote(word) for word in argv)


@dataclass(frozen=True)
class RemoteScript:
    """A POSIX sh script to run on a builder host, whatever its login shell."""

    script: str

    def wire(self) -> str:
        """The exact string handed to SSH as the command."""
        payload = base64.b64encode(self.script.encode()).decode("ascii")
        return f"sh -c 'eval \"$(printf %s {payload} | base64 -d)\"'"

    @classmethod
    def from_argv(cls, argv: Iterable[str]) -> RemoteScript:
        return cls(join(argv))


# Markers that split the probe's output into sections; ASCII, unlikely in real output.
PROBE_SECTIONS = ("uname", "docker", "buildx", "binfmt", "df")


def probe_script() -> RemoteScript:
    """Everything the probe needs from a host, in one round trip.

    Each section starts with a ``@@matui:NAME`` line and ends with ``@@matui:NAME:rc=N`` so a
    missing tool is told apart from empty output.
    """
    sections = {
        "uname": "uname -m",
        "docker": "docker version --format '{{json .}}'",
        "buildx": "docker buildx version",
        "binfmt": (
            "for f in /proc/sys/fs/binfmt_misc/qemu-*; do "
            "[ \"$(head -n 1 \"$f\" 2>/dev/null)\" = enabled ] && echo \"${f##*/}\"; done; true"
        ),
        "df": (
            'root="$(docker info --format \'{{.DockerRootDir}}\' 2>/dev/null)"; '
            '[ -n "$root" ] || root=/var/lib/docker; '
            'df -Pk "$root" 2>/dev/null || df -Pk /'
        ),
    }
    lines = []
    for name in PROBE_SECTIONS:
        lines.append(f"echo @@matui:{name}")
        lines.append(f"( {sections[name]} ) 2>&1")
        lines.append(f"echo @@matui:{name}:rc=$?")
    return RemoteScript("\n".join(lines) + "\n")
