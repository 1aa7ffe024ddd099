"""Registry vocabulary: media types, limits, errors, and manifests/configs as values."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from matui.engine.arch import Platform

log = logging.getLogger(__name__)

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MEDIA_DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
_SCHEMA1_TYPES = frozenset({MEDIA_DOCKER_SCHEMA1, MEDIA_DOCKER_SCHEMA1_SIGNED})
# Content types that say nothing about the manifest: fall back to the body's mediaType.
_GENERIC_TYPES = frozenset(
    {"", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream"}
)

#: Ask for every kind we understand, indexes first: a registry that is sent a narrower Accept list
#: may answer with a single platform's manifest instead of the index.
ACCEPT = ", ".join((MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST))

ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"
ANNOTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"

MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_CONFIG_BYTES = 32 * 1024 * 1024
_MAX_ERROR_BODY = 64 * 1024
_MAX_TOKEN_BODY = 1024 * 1024
_HELPER_TIMEOUT = 30.0
_TOKEN_SLACK = 10.0  # seconds before a token's expiry at which it is fetched again

_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HUB_API_HOST = "registry-1.docker.io"
_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_HELPER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)


# --------------------------------------------------------------------------------------------
# Errors


class RegistryError(Exception):
    """A registry answer matui cannot use. The message names the reference, status and a fix.

    Messages never contain credentials.
    """

    def __init__(self, message: str, *, ref: str | None = None, status: int | None = None):
        super().__init__(message)
        self.ref = ref
        self.status = status


class NotFound(RegistryError):
    """The registry does not have the manifest or blob asked for."""


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class IndexEntry:
    """One descriptor in an image index / manifest list."""

    digest: str
    media_type: str
    #: Canonical platform; None for attestations, entries without a platform, and arches matui
    #: does not know (see ``platform_text`` for what the index said).
    platform: Platform | None
    size: int
    #: A BuildKit attestation manifest (``unknown/unknown`` or annotated as one): not a platform.
    attestation: bool
    #: The platform as written in the index (``os/architecture[/variant]``), or None.
    platform_text: str | None = None
    #: For an attestation: the digest of the image manifest it describes, when annotated.
    attests: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as served, with its digest computed from ``raw``."""

    digest: str
    media_type: str
    raw: bytes = field(repr=False)
    entries: tuple[IndexEntry, ...]
    config_digest: str | None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def platforms(self) -> list[Platform]:
        """Platforms of the non-attestation entries, in index order; duplicates are kept."""
        return [e.platform for e in self.entries if not e.attestation and e.platform is not None]


@dataclass(frozen=True)
class ImageConfigFacts:
    """What an image's config blob says it runs on: the real arch of its contents."""

    os: str
    architecture: str
    variant: str | None
    #: None when the arch is not one matui knows (or is ``unknown``, as in attestation configs).
    platform: Platform | None


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class Credentials:
    """Registry credentials. The secrets are kept out of ``repr``."""

    username: str
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every string that must never appear in output (including the Basic header form)."""
        values = [v for v in (self.password, self.identity_token) if v]
        if self.password:
            pair = f"{self.username}:{self.password}".encode()
            values.append(base64.b64encode(pair).decode("ascii"))
        return tuple(values)


# --------------------------------------------------------------------------------------------
