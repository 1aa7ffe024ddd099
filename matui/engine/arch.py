"""Architecture names and OCI platforms.

Every arch name that enters matui (config, `uname -m`, `docker version`, image configs) passes
through :func:`normalise_arch` so that comparisons are between canonical OCI names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Canonical architectures matui builds for, in the order shown to users.
ARCHES: tuple[str, ...] = (
    "amd64",
    "arm64",
    "arm/v7",
    "arm/v6",
    "386",
    "ppc64le",
    "s390x",
    "riscv64",
)

# Aliases as printed by `uname -m`, Go's GOARCH, distro package arches and people.
_ALIASES: dict[str, str] = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm64/v8": "arm64",
    "armv8": "arm64",
    "armv8l": "arm/v7",  # 32-bit userland on an ARMv8 CPU
    "arm/v7": "arm/v7",
    "armv7": "arm/v7",
    "armv7l": "arm/v7",
    "armhf": "arm/v7",
    "arm": "arm/v7",
    "arm/v6": "arm/v6",
    "armv6": "arm/v6",
    "armv6l": "arm/v6",
    "armel": "arm/v6",
    "386": "386",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "x86": "386",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

# The name qemu-user-static registers in binfmt_misc for each arch.
_QEMU_NAMES: dict[str, str] = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm/v7": "arm",
    "arm/v6": "arm",
    "386": "i386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


class ArchError(ValueError):
    """A name that is not an architecture matui knows."""


def normalise_arch(name: str) -> str:
    """Return the canonical OCI arch (``amd64``, ``arm64``, ``arm/v7`` ...) for an alias.

    Raises :class:`ArchError` with the list of valid names when ``name`` is unknown.
    """
    key = name.strip().lower()
    try:
        return _ALIASES[key]
    except KeyError:
        raise ArchError(
            f"{name!r} is not an architecture; use one of {', '.join(ARCHES)}"
        ) from None


def arch_from_parts(architecture: str, variant: str | None) -> str:
    """Canonical arch from an OCI ``architecture`` + ``variant`` pair (image config, index)."""
    if architecture == "arm" and variant:
        return normalise_arch(f"arm/{variant}")
    if architecture == "arm64":
        return "arm64"  # variant v8 is implied and often omitted
    return normalise_arch(architecture)


def emulatable_arches(binfmt_entries: list[str]) -> list[str]:
    """Arches that QEMU user emulation can run, from the names in /proc/sys/fs/binfmt_misc."""
    present = {entry.removeprefix("qemu-") for entry in binfmt_entries if entry.startswith("qemu-")}
    return [arch for arch in ARCHES if _QEMU_NAMES[arch] in present]


_PLATFORM_RE = re.compile(r"[a-z0-9]+(?:/[a-z0-9_-]+){1,2}", re.ASCII)


@dataclass(frozen=True, order=True)
class Platform:
    """An OCI platform such as ``linux/arm/v7``; ``arch`` is canonical (``arm/v7``)."""

    os: str
    arch: str

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``; the arch part accepts aliases (``linux/aarch64``)."""
        if not _PLATFORM_RE.fullmatch(text):
            raise ArchError(
                f"{text!r} is not a platform; write it as os/arch[/variant], e.g. linux/arm64"
            )
        os_name, _, arch = text.partition("/")
        if os_name != "linux":
            raise ArchError(f"{text!r}: only linux platforms can be built; use linux/ARCH")
        return cls(os_name, normalise_arch(arch))

    @property
    def architecture(self) -> str:
        """The OCI ``architecture`` field (``arm`` for ``arm/v7``)."""
        return self.arch.partition("/")[0]

    @property
    def variant(self) -> str | None:
        """The OCI ``variant`` field, when the canonical arch carries one."""
        return self.arch.partition("/")[2] or None

    @property
    def tag_arch(self) -> str:
        """The arch as it may appear inside a tag (no slash): ``amd64``, ``armv7``."""
        return self.arch.replace("/", "")

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"
