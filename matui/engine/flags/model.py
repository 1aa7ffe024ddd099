"""Flags: what matui tells the operator before something wrong ships.

A flag is plain data; checks that produce flags are pure functions over facts (probes, registry
state, plans) so that `matui check`, `matui build --json`, `matui manifest` and the dashboard show
the very same flags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matui.engine.probe import HostProbe


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class FlagKind(StrEnum):
    TAG_OVERWRITE = "tag-overwrite"
    ARCH_MISMATCH = "arch-mismatch"
    MISSING_IMAGE = "missing-image"  # a built per-arch image is gone from the registry
    SOURCE_MISMATCH = "source-mismatch"  # arches of one index built from different sources
    BASE_IMAGE = "base-image"  # a Dockerfile FROM without an image for a planned platform
    PUSH_ACCESS = "push-access"  # a host's docker cannot reach or log in to the registry
    DISK_SPACE = "disk-space"  # a host's free disk is below the configured floor
    BUILDER_DRIVER = "builder-driver"  # an image asks what its host's buildx driver cannot do


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    severity: Severity
    subject: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Flag:
        return cls(
            FlagKind(data["kind"]),
            Severity(data["severity"]),
            str(data["subject"]),
            str(data["message"]),
            dict(data.get("evidence") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "severity": str(self.severity),
            "subject": self.subject,
            "message": self.message,
            "evidence": self.evidence,
        }


def has_errors(flags: Iterable[Flag]) -> bool:
    return any(flag.severity is Severity.ERROR for flag in flags)


def host_arch_flags(probes: Sequence[HostProbe]) -> list[Flag]:
    """A host is not the arch it claims: its own `uname -m` (or its docker server) says otherwise.

    `uname -m` inside a build can be emulated, so only the host's own answers count as evidence.
    """
    flags: list[Flag] = []
    for probe in probes:
        if probe.native_arch is None:
            continue
        evidence = {
            "declared": probe.arch,
            "uname": probe.uname,
            "native": probe.native_arch,
            "docker_arch": probe.docker_arch,
        }
        if probe.native_arch != probe.arch:
            flags.append(
                Flag(
                    FlagKind.ARCH_MISMATCH,
                    Severity.ERROR,
                    probe.name,
                    f"declared {probe.arch} but `uname -m` says {probe.uname} "
                    f"(native {probe.native_arch}); fix the host's arch in the config",
                    evidence,
                )
            )
        elif probe.docker_arch is not None and probe.docker_arch != probe.native_arch:
            flags.append(
                Flag(
                    FlagKind.ARCH_MISMATCH,
                    Severity.ERROR,
                    probe.name,
                    f"the docker engine runs as {probe.docker_arch} on a {probe.native_arch} host; "
                    "builds there would be emulated — install the native docker engine",
                    evidence,
                )
            )
    return flags
