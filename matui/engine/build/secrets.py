"""A build's private inputs: build-arg values and BuildKit secrets, read on the operator's
machine and packed for the one trip they make to a builder host.

Nothing here ever puts a value on a command line, in a message or in a record: the values are
read when a build starts (a missing one stops it before anything is started, with one line per
problem naming the config key and the fix), packed into a small tar that travels on the stdin of
:func:`matui.engine.shell.secrets_script`, and live on the host in the job's ``secrets/``
directory (0700, files 0600) until the build ends. job.sh hands the build-arg values to buildx
through its environment and each secret as ``--secret id=ID,src=FILE``.

BuildKit shows a ``RUN`` step with its build args expanded (``#6 [2/3] RUN test "s3cret" = ...``),
so the build's output goes through a sed script (:data:`~matui.engine.shell.REDACT_FILE`, in the
same private directory) that replaces the value of every secret-looking build arg and of every
secret with ``***`` before it reaches the host's build.log, and so matui's own copy of it.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from matui.engine import shell
from matui.engine.config import looks_like_secret
from matui.engine.plan import PlanError

if TYPE_CHECKING:
    from matui.engine.config import Config, ImageConfig, SecretSource

MAX_SECRET_BYTES = 500 * 1024
"""BuildKit refuses a secret larger than this (500 KiB)."""

REDACTED = b"***"
MIN_REDACT = 4
"""Shorter values are not replaced in the log: three characters would blot out ordinary words."""
MAX_REDACTIONS = 64
"""Patterns in the redaction, most specific first; each costs sed time on every log line."""

_UNSAFE = frozenset(bytes([*range(0x20), 0x7F]))
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


class SecretUnavailable(PlanError):
    """A secret (or build-arg value) cannot be read or sent; nothing was started. One line per
    problem: ``images[N].secrets.ID: what is wrong; the fix``. Never holds a value."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def image_path(config: Config | None, image: ImageConfig) -> str:
    """``images[N]`` as the config checker names this image's table."""
    if config is not None:
        for index, candidate in enumerate(config.images):
            if candidate.name == image.name:
                return f"images[{index}]"
    return f"images[name = {image.name}]"


def read_secrets(config: Config | None, image: ImageConfig) -> dict[str, bytes]:
    """Every secret of ``image``, read from matui's environment and files now.

    Raises :class:`SecretUnavailable` naming each one that cannot be read, and why."""
    where = image_path(config, image)
    values: dict[str, bytes] = {}
    problems: list[str] = []
    for name, source in sorted(image.secrets.items()):
        key = f"{where}.secrets.{_key(name)}"
        value, problem = _read_one(source)
        if problem is not None:
            problems.append(f"{key}: {problem}")
        elif value is not None and len(value) > MAX_SECRET_BYTES:
            problems.append(
                f"{key}: {source} holds more than {MAX_SECRET_BYTES // 1024} KiB, the most "
                "BuildKit takes for a secret — put large files in the build context, or "
                "fetch them in the build with the secret as the credential"
            )
        elif value is not None:
            values[name] = value
    for name, text in sorted(image.build_args.items()):
        if set(text.encode()) & _UNSAFE:
            problems.append(
                f"{where}.build_args.{_key(name)}: the value (not shown: it may be secret) holds "
                "control characters; remove them"
            )
    if problems:
        raise SecretUnavailable(problems)
    return values


def _key(name: str) -> str:
    """A key as the config checker writes it in a key path: quoted unless it is a bare key."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _read_one(source: SecretSource) -> tuple[bytes | None, str | None]:
    if source.kind == "env":
        variable = source.variable or ""
        value = os.environb.get(variable.encode())
        if value is None:
            return None, (
                f"the environment variable {variable} is not set; export it in the shell that "
                f"runs matui (export {variable}=...), or point the secret at a file "
                '("file:PATH")'
            )
        return value, None
    path = source.path
    if path is None:
        return None, "the secret has no file; write it as file:PATH"
    try:
        with path.open("rb") as file:
            # One byte past the limit is enough to refuse it (and /dev/zero never ends).
            return file.read(MAX_SECRET_BYTES + 1), None
    except FileNotFoundError:
        why = "does not exist"
    except IsADirectoryError:
        why = "is a directory, not a file"
    except PermissionError:
        why = "is not readable by you (permission denied)"
    except OSError as exc:
        why = f"cannot be read ({exc.strerror or type(exc).__name__})"
    return None, (
        f"{path} {why}; create it, or fix the path after file: (relative paths start at the "
        "config file's directory)"
    )


@dataclass(frozen=True)
class PrivateInputs:
    """What one job's build needs that must never be on a command line: the tar that
    :func:`~matui.engine.shell.secrets_script` unpacks into the job's ``secrets/`` directory."""

    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    redactions: tuple[bytes, ...] = ()

    def __repr__(self) -> str:  # never a value, should one of these end up in a traceback
        return (
            f"PrivateInputs(build_args={sorted(self.build_args)}, "
            f"secrets={sorted(self.secrets)}, redactions={len(self.redactions)})"
        )

    def __bool__(self) -> bool:
        return bool(self.build_args or self.secrets)

    def payload(self) -> bytes:
        """The tar: ``build-args.sh`` (``export NAME='value'`` lines), ``secret.ID`` for each
        secret, ``redact.sed`` when there is anything to redact; every file mode 0600."""
        members: list[tuple[str, bytes]] = []
        if self.build_args:
            members.append((_name(shell.BUILD_ARGS_FILE), build_args_file(self.build_args)))
        for name, value in sorted(self.secrets.items()):
            members.append((_name(shell.secret_file(name)), value))
        if self.redactions:
            members.append((_name(shell.REDACT_FILE), redact_script(self.redactions)))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def _name(path: str) -> str:
    """A path under ``secrets/`` as a member name of the tar unpacked there."""
    return path.removeprefix(f"{shell.SECRETS_DIR}/")


def private_inputs(image: ImageConfig, secrets: Mapping[str, bytes]) -> PrivateInputs:
    """The job's private inputs: every build-arg value (none goes on buildx's command line),
    the secrets' values, and what to blot out of the log (the values of secret-looking build
    args and of the secrets, line by line for a file)."""
    redact: set[bytes] = set()
    for name, text in image.build_args.items():
        if looks_like_secret(name):
            redact.add(text.encode())
    for data in secrets.values():
        redact.add(data)
        redact.update(line.strip(b"\r") for line in data.split(b"\n"))
    usable = sorted(
        (v for v in redact if len(v) >= MIN_REDACT and b"\n" not in v and b"\0" not in v),
        key=lambda v: (-len(v), v),
    )
    return PrivateInputs(dict(image.build_args), dict(secrets), tuple(usable[:MAX_REDACTIONS]))


def build_args_file(build_args: Mapping[str, str]) -> bytes:
    """``export NAME='value'`` per build arg: sourced by job.sh in the subshell that execs buildx
    (values are quoted for sh; a value with a control character never gets here)."""
    lines = []
    for name, value in sorted(build_args.items()):
        if set(value.encode()) & _UNSAFE or not name.isidentifier() or not name.isascii():
            raise SecretUnavailable([f"build arg {name}: cannot be sent as it is (not shown)"])
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines).encode()


_SED_SPECIAL = frozenset(b"\\/.*[]^$")


def redact_script(values: Iterable[bytes]) -> bytes:
    """A sed script (run with ``LC_ALL=C``: bytes, not characters) that replaces each value,
    taken literally, with ``***``: ``s/ESCAPED/***/g`` per value, longest first."""
    lines = []
    for value in values:
        escaped = b"".join(b"\\" + bytes([c]) if c in _SED_SPECIAL else bytes([c]) for c in value)
        lines.append(b"s/" + escaped + b"/" + REDACTED + b"/g\n")
    return b"".join(lines)
