"""The buildx builders a team already runs: what ``docker buildx inspect NAME`` says about one,
and what its driver lets matui do.

A host entry may name an existing builder (``builder = "NAME"``). buildx's own multi-node
builders pick the first node that lists a platform and fall back to emulation silently; matui
instead reads the builder's nodes and only builds a platform on a node whose *own* arch it is.
The ``docker`` driver lists every platform QEMU can emulate after the engine's own, so a listed
platform is not a native one: a node's native platform is the first one it lists (BuildKit puts
the worker's default platform first; buildx puts platforms set by ``buildx create --platform``,
marked ``*``, first as well — an operator's statement of what the node is for).

Pure functions over recorded text (``tests/data/builders/``): the probe runs the command, this
module reads its answer; the build asks :func:`build_route` how a job's image leaves its builder
(per-arch tag, or push by digest with attestations and a registry cache), and the checks, the
index and the front ends read the same answer (:attr:`BuildRoute.pushed_as`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from matui.engine.arch import ArchError, normalise_arch

DOCKER_DRIVER = "docker"
"""The driver of the engine's own builder (and of a builder that is a docker context)."""

ATTESTATIONS: tuple[str, ...] = ("provenance", "sbom")
"""The attestations an image may ask for (``attestations = [...]``)."""


@dataclass(frozen=True)
class BuilderNode:
    """One node of a builder as ``buildx inspect`` lists it."""

    name: str
    endpoint: str
    status: str
    platforms: tuple[str, ...]
    buildkit: str = ""

    @property
    def native_arch(self) -> str | None:
        """The node's own arch (canonical name), from the first platform it lists; None when it
        lists none (a stopped node) or the first is not an arch matui knows."""
        if not self.platforms:
            return None
        _os, _sep, arch = self.platforms[0].partition("/")
        try:
            return normalise_arch(arch)
        except ArchError:
            return None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class BuilderInfo:
    """A builder: its name, driver and nodes."""

    name: str
    driver: str
    nodes: tuple[BuilderNode, ...]

    def native_nodes(self, arch: str) -> list[BuilderNode]:
        """The running nodes whose own arch is ``arch`` (a canonical name)."""
        return [n for n in self.nodes if n.running and n.native_arch == arch]

    def node(self, name: str) -> BuilderNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def refusal(self, arch: str, *, allow_emulation: bool = False) -> str | None:
        """Why this builder cannot build ``arch``, or None when it can: no running node of that
        arch (a node that only emulates it counts only when emulation is allowed)."""
        if self.native_nodes(arch):
            return None
        emulating = [
            n for n in self.nodes if n.running and any(_arch_of(p) == arch for p in n.platforms)
        ]
        if allow_emulation and emulating:
            return None
        seen = (
            ", ".join(
                f"{n.name} ({n.native_arch or 'unknown'}, {n.status or 'no status'})"
                for n in self.nodes
            )
            or "no nodes"
        )
        why = f"builder {self.name} ({self.driver} driver) has no running {arch} node: {seen}"
        if emulating:
            why += (
                f"; {', '.join(n.name for n in emulating)} would emulate it — set "
                "allow_emulation = true on the host to accept that"
            )
        return why


def _arch_of(platform: str) -> str | None:
    _os, _sep, arch = platform.rstrip("*").partition("/")
    try:
        return normalise_arch(arch)
    except ArchError:
        return None


class InspectError(ValueError):
    """``buildx inspect`` said something this parser cannot read as a builder."""


def parse_inspect(text: str) -> BuilderInfo:
    """Read ``docker buildx inspect NAME``'s text output (buildx 0.10 to 0.13 layouts: the
    ``Buildkit:`` and ``BuildKit version:`` spellings, with or without ``Last Activity``).

    The lines before ``Nodes:`` describe the builder; after it, each ``Name:`` opens a node.
    Keys this parser does not use (driver options, labels, GC policy) are skipped."""
    name = driver = ""
    nodes: list[dict[str, str]] = []
    in_nodes = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == "Nodes:":
            in_nodes = True
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if not in_nodes:
            if key == "Name" and not name:
                name = value
            elif key == "Driver" and not driver:
                driver = value
            continue
        if key == "Name":
            nodes.append({"Name": value})
        elif nodes and key in ("Endpoint", "Status", "Platforms", "Buildkit", "BuildKit version"):
            nodes[-1].setdefault("BuildKit" if key.startswith("Build") else key, value)
    if not name or not driver:
        raise InspectError("buildx inspect printed no builder Name and Driver")
    return BuilderInfo(
        name=name,
        driver=driver,
        nodes=tuple(
            BuilderNode(
                name=n["Name"],
                endpoint=n.get("Endpoint", ""),
                status=n.get("Status", ""),
                platforms=tuple(
                    p.strip().rstrip("*") for p in n.get("Platforms", "").split(",") if p.strip()
                ),
                buildkit=n.get("BuildKit", ""),
            )
            for n in nodes
        ),
    )


@dataclass(frozen=True)
class Capabilities:
    """What a driver lets matui do, decided here once for the build, the checks and the docs."""

    driver: str
    push_by_digest: bool
    attestations: bool
    registry_cache: bool

    def problems(self, *, cache: str | None, attestations: Sequence[str]) -> list[str]:
        """An image's settings this driver cannot honour, each naming the driver and what would
        work (shown by pre-flight and ``matui check``)."""
        out: list[str] = []
        if cache and not self.registry_cache:
            out.append(
                f"cache = {cache!r} needs a registry cache export, which the {self.driver} "
                "driver cannot do: remove cache, or build on hosts whose builder = names a "
                "docker-container, remote or kubernetes builder"
            )
        if attestations and not self.attestations:
            out.append(
                f"attestations = {list(attestations)!r} need an image store that keeps them, "
                f"which the {self.driver} driver does not: remove attestations, or build on "
                "hosts whose builder = names a docker-container, remote or kubernetes builder"
            )
        return out


def capabilities(driver: str) -> Capabilities:
    """The ``docker`` driver builds into the engine's image store: per-arch tags, no registry
    cache export, no attestations (the classic store drops them). Every other driver runs its
    own BuildKit and exports to the registry: push by digest, attestations, registry cache."""
    full = driver != DOCKER_DRIVER
    return Capabilities(driver=driver, push_by_digest=full, attestations=full, registry_cache=full)


BY_DIGEST = "by digest"
"""A job's ``pushed_as`` when its image was pushed by digest only (no per-arch tag moved)."""


@dataclass(frozen=True)
class BuildRoute:
    """How one job's image leaves its builder: decided once by :func:`build_route`, turned into
    flags by :func:`matui.engine.shell.buildx_argv`, recorded on the job (``pushed_as``)."""

    builder: str | None
    """The host's builder (``builder = "NAME"``); None: the engine's own."""
    driver: str
    builder_is_context: bool
    """A docker-driver builder is a docker context: ``docker --context NAME buildx build``
    (buildx 0.13 refuses ``--builder`` for one); other drivers get ``--builder NAME``."""
    push_by_digest: bool
    attestations: tuple[str, ...] = ()
    cache_ref: str | None = None

    @property
    def pushed_as(self) -> str | None:
        """:data:`BY_DIGEST`, or None: the job's per-arch tag (the caller knows it)."""
        return BY_DIGEST if self.push_by_digest else None

    def buildx_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`matui.engine.shell.buildx_argv` this route decides."""
        return {
            "builder": self.builder,
            "builder_is_context": self.builder_is_context,
            "push_by_digest": self.push_by_digest,
            "attestations": self.attestations,
            "cache_ref": self.cache_ref,
        }


def pushed_line(pushed_as: str | None, builder: str | None, node: str | None = None) -> str:
    """How a job's image was pushed and through what, in one line for the front ends:
    ``pushed by digest; builder kube/node builder-arm64``. Empty for a job that pushes its
    per-arch tag through the engine's own builder: nothing beyond the usual to say."""
    parts = ["pushed by digest"] if pushed_as == BY_DIGEST else []
    if builder:
        parts.append(f"builder {builder}" + (f"/node {node}" if node else ""))
    return "; ".join(parts)


def build_route(
    builder: str | None,
    driver: str | None,
    *,
    repository: str,
    arch: str,
    cache: str | None = None,
    attestations: Sequence[str] = (),
) -> BuildRoute:
    """The one decision of how a job's image leaves its builder: a host without a builder, or
    with a docker-driver one (a docker context), pushes the per-arch tag; a builder with its own
    BuildKit (docker-container, remote, kubernetes) pushes by digest, with the image's
    ``attestations`` (OCI media types) and its registry ``cache`` per image and arch.

    ``driver`` is the probe's reading of the builder (None: not read — a record from before the
    probe read drivers; such a builder was a docker context, the only kind driven then)."""
    driver = driver if builder is not None and driver else DOCKER_DRIVER
    caps = capabilities(driver)
    wanted = tuple(sorted(set(attestations))) if caps.attestations else ()
    name = repository.rstrip("/").rpartition("/")[2]
    return BuildRoute(
        builder=builder,
        driver=driver,
        builder_is_context=builder is not None and driver == DOCKER_DRIVER,
        push_by_digest=caps.push_by_digest,
        attestations=wanted,
        cache_ref=cache_ref(cache, name, arch) if cache and caps.registry_cache else None,
    )


def cache_ref(cache: str, image: str, arch: str) -> str:
    """The registry cache ref of one image and arch: ``REPO:{image}-{arch}`` (``arm/v7`` as
    ``arm-v7``: a tag has no slash)."""
    return f"{cache}:{image}-{arch.replace('/', '-')}"


def node_from_metadata(text: str | bytes, builder: str) -> str | None:
    """The node that built a job, from the build's ``--metadata-file``: its
    ``buildx.build.ref`` is ``BUILDER/NODE/REF``. None when the file does not say or names
    another builder."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    ref = data.get("buildx.build.ref") if isinstance(data, dict) else None
    if not isinstance(ref, str):
        return None
    parts = ref.split("/")
    if len(parts) != 3 or parts[0] != builder:
        return None
    return parts[1] or None


def check_attestations(values: Iterable[str]) -> list[str]:
    """The names in ``values`` that are not attestations matui knows."""
    return [v for v in values if v not in ATTESTATIONS]
