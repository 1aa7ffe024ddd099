"""Pure parsing of registry answers: manifests, indexes, image configs, digests, auth challenges."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from matui.engine.arch import ArchError, Platform, arch_from_parts
from matui.engine.refs import DIGEST_RE
from matui.engine.registry.model import (
    _GENERIC_TYPES,
    _SCHEMA1_TYPES,
    ANNOTATION_REFERENCE_DIGEST,
    ANNOTATION_REFERENCE_TYPE,
    ATTESTATION_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Challenge,
    ImageConfigFacts,
    IndexEntry,
    Manifest,
    RegistryError,
)

# Pure parsing


def sha256_digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _where(ref: str | None, digest: str | None) -> str:
    if ref:
        return ref
    return f"manifest {digest}" if digest else "manifest"


def _load_json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise RegistryError(
            f"{what} is not JSON; check that the host is a container registry"
        ) from None
    if not isinstance(data, dict):
        raise RegistryError(f"{what} is not a JSON object; check that the host is a registry")
    return data


def _manifest_media_type(header: str | None, body: Mapping[str, Any], what: str) -> str:
    header_type = (header or "").split(";", 1)[0].strip().lower()
    body_type = body.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise RegistryError(f"{what}: mediaType is not a string; the manifest is malformed")
    if (
        body.get("schemaVersion") == 1
        or header_type in _SCHEMA1_TYPES
        or body_type in _SCHEMA1_TYPES
    ):
        raise RegistryError(
            f"{what} is a Docker schema 1 manifest, which matui does not support (deprecated and "
            "without platforms); push the image again with a current docker or buildx"
        )
    if header_type in INDEX_TYPES | MANIFEST_TYPES:
        if body_type and body_type != header_type:
            raise RegistryError(
                f"{what}: the registry served Content-Type {header_type} but the manifest says "
                f"mediaType {body_type}; the registry or the pushed manifest is broken"
            )
        return header_type
    if body_type:
        return body_type
    if header_type not in _GENERIC_TYPES:
        return header_type
    # OCI allows omitting mediaType; infer it from the shape.
    if isinstance(body.get("manifests"), list):
        return MEDIA_OCI_INDEX
    if isinstance(body.get("config"), dict):
        return MEDIA_OCI_MANIFEST
    raise RegistryError(f"{what} has no mediaType and is neither an index nor an image manifest")


def _digest_field(value: object, what: str) -> str:
    if not isinstance(value, str) or not DIGEST_RE.fullmatch(value):
        raise RegistryError(f"{what}: {value!r} is not a sha256 digest; the manifest is malformed")
    return value


def _optional_str(mapping: Mapping[str, Any], key: str, what: str) -> str | None:
    value = mapping.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RegistryError(f"{what}: {key} is not a string")
    return value


def _platform_of(os_name: str, architecture: str, variant: str | None) -> Platform | None:
    try:
        return Platform(os_name, arch_from_parts(architecture, variant))
    except ArchError:
        return None


def _parse_entry(item: object, what: str) -> IndexEntry:
    if not isinstance(item, dict):
        raise RegistryError(f"{what} is not an object; the index is malformed")
    digest = _digest_field(item.get("digest"), what)
    media_type = item.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise RegistryError(f"{what} ({digest}) has no mediaType; the index is malformed")
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{what} ({digest}) has no valid size; the index is malformed")
    annotations = item.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise RegistryError(f"{what} ({digest}): annotations is not an object")
    attestation = annotations.get(ANNOTATION_REFERENCE_TYPE) == ATTESTATION_MANIFEST
    attests = annotations.get(ANNOTATION_REFERENCE_DIGEST)
    if not (isinstance(attests, str) and DIGEST_RE.fullmatch(attests)):
        attests = None

    platform: Platform | None = None
    platform_text: str | None = None
    raw_platform = item.get("platform")
    if raw_platform is not None:
        if not isinstance(raw_platform, dict):
            raise RegistryError(f"{what} ({digest}): platform is not an object")
        os_name = _optional_str(raw_platform, "os", what) or ""
        architecture = _optional_str(raw_platform, "architecture", what) or ""
        variant = _optional_str(raw_platform, "variant", what)
        platform_text = "/".join(p for p in (os_name, architecture, variant) if p)
        if os_name == "unknown" and architecture == "unknown":
            attestation = True
        if not attestation and os_name and architecture:
            platform = _platform_of(os_name, architecture, variant)
    return IndexEntry(
        digest=digest,
        media_type=media_type,
        platform=platform,
        size=size,
        attestation=attestation,
        platform_text=platform_text,
        attests=attests if attestation else None,
    )


def parse_manifest(
    raw: bytes, media_type: str | None, digest: str, *, ref: str | None = None
) -> Manifest:
    """Parse a served manifest or index.

    ``media_type`` is the response's Content-Type (may be None or generic, then the body's
    ``mediaType`` decides). ``digest`` must be the sha256 of ``raw``; a mismatch is an error.
    Handles OCI index, Docker manifest list, OCI manifest and Docker v2 manifest; rejects schema 1
    and anything else (artifacts, Helm charts ...).
    """
    computed = sha256_digest(raw)
    what = _where(ref, computed)
    if digest != computed:
        raise RegistryError(
            f"{what}: content digest is {computed}, not {digest}; the registry served "
            "different bytes than were asked for (corrupt cache or proxy in between)"
        )
    body = _load_json_object(raw, what)
    kind = _manifest_media_type(media_type, body, what)
    if kind in INDEX_TYPES:
        manifests = body.get("manifests")
        if not isinstance(manifests, list):
            raise RegistryError(f"{what}: index has no manifests list; it is malformed")
        entries = tuple(
            _parse_entry(item, f"{what}: manifests[{i}]") for i, item in enumerate(manifests)
        )
        return Manifest(computed, kind, raw, entries, None)
    if kind in MANIFEST_TYPES:
        config = body.get("config")
        if not isinstance(config, dict):
            raise RegistryError(f"{what}: image manifest has no config descriptor; it is malformed")
        config_digest = _digest_field(config.get("digest"), f"{what}: config")
        return Manifest(computed, kind, raw, (), config_digest)
    raise RegistryError(
        f"{what} has media type {kind}, which is not a container image manifest or index; "
        "check the tag points at an image"
    )


def parse_image_config(raw: bytes) -> ImageConfigFacts:
    """The os / architecture / variant an image config blob declares."""
    body = _load_json_object(raw, "image config")
    os_name = body.get("os")
    architecture = body.get("architecture")
    if not isinstance(os_name, str) or not os_name:
        raise RegistryError("image config has no os; it is not a container image config")
    if not isinstance(architecture, str) or not architecture:
        raise RegistryError("image config has no architecture; it is not a container image config")
    variant = _optional_str(body, "variant", "image config")
    return ImageConfigFacts(
        os=os_name,
        architecture=architecture,
        variant=variant,
        platform=_platform_of(os_name, architecture, variant),
    )


_AUTH_PARAM_RE = re.compile(
    r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)', re.ASCII
)


def parse_www_authenticate(header: str) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` or ``Basic realm="..."``.

    Quoted values may contain commas (``scope="repository:a:pull,push"``) and escaped quotes.
    Returns None for an empty or unreadable header. Only the first challenge is read.
    """
    text = header.strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", scheme, re.ASCII):
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _AUTH_PARAM_RE.match(rest, pos)
        if not match or match.end() == pos:
            break
        key, quoted, bare = match.groups()
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params.setdefault(key.lower(), value)
        pos = match.end()
    return Challenge(scheme.lower(), params)


# --------------------------------------------------------------------------------------------
