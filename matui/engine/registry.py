"""Read-only registry client: manifests, indexes, image configs, digests.

Standard library only. Everything that touches the network is synchronous underneath and exposed
through ``async`` methods that run it in a worker thread (``asyncio.to_thread``).

Security rules kept here:

* credentials are read lazily (only after a registry asks for them) and never logged, never put in
  an exception message, never passed on a command line (credential helpers get the host on stdin);
* an ``Authorization`` header is never forwarded to another origin on a redirect (registries
  redirect blob downloads to object storage);
* credentials are only sent over HTTPS, or plain HTTP to hosts allowed by ``insecure_hosts``
  (loopback by default);
* every manifest's digest is computed from the exact bytes served and checked against the
  ``Docker-Content-Digest`` header and against the digest asked for.

The parsing functions (:func:`parse_manifest`, :func:`parse_image_config`,
:func:`parse_www_authenticate`, :func:`credentials_from_config`) are pure and tested on their own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO, Any

from matui.engine.arch import ArchError, Platform, arch_from_parts
from matui.engine.refs import DIGEST_RE, TAG_RE, RefError, Repository

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
# Docker config and credentials


def default_docker_config() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def load_docker_config(path: Path) -> dict[str, Any]:
    """The parsed config file; ``{}`` when there is none. Errors name the file, not its content."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RegistryError(f"cannot read docker config {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise RegistryError(
            f"docker config {path} is not valid JSON; fix it or log in again with `docker login`"
        ) from None
    if not isinstance(data, dict):
        raise RegistryError(f"docker config {path} is not a JSON object")
    return data


def _is_hub(host: str) -> bool:
    return host.lower() in _HUB_HOSTS


def _config_key_host(key: str) -> str:
    """``https://host:5000/v1/`` → ``host:5000`` (the form docker login may have stored)."""
    text = key.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    return text.split("/", 1)[0].lower()


def _same_registry(key: str, host: str) -> bool:
    key_host = _config_key_host(key)
    if _is_hub(host):
        return _is_hub(key_host)
    return key_host == host.lower()


def credentials_from_config(config: Mapping[str, Any], host: str) -> Credentials | None:
    """Credentials stored in the ``auths`` section for ``host`` (pure; no helpers)."""
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    # An exact key first, then any spelling of the same host (https://host, host/v1/ ...).
    keys = sorted(auths, key=lambda k: (k != host, k))
    for key in keys:
        if not isinstance(key, str) or not _same_registry(key, host):
            continue
        entry = auths[key]
        if not isinstance(entry, dict):
            continue
        username = entry.get("username") if isinstance(entry.get("username"), str) else ""
        password = entry.get("password") if isinstance(entry.get("password"), str) else ""
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                decoded = base64.b64decode(auth, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise RegistryError(
                    f"the saved login for {host} in the docker config is not valid base64 "
                    f"user:password; log in again with `docker login {host}`"
                ) from None
            user, sep, secret = decoded.partition(":")
            if not sep:
                raise RegistryError(
                    f"the saved login for {host} in the docker config has no user:password "
                    f"pair; log in again with `docker login {host}`"
                )
            username, password = user, secret
        token = entry.get("identitytoken")
        identity_token = token if isinstance(token, str) else ""
        if identity_token or password:
            return Credentials(str(username or ""), str(password or ""), identity_token)
    return None


def credential_helper_for(config: Mapping[str, Any], host: str) -> str | None:
    """The credential helper name for ``host``: ``credHelpers[host]``, else ``credsStore``."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if (
                isinstance(key, str)
                and isinstance(name, str)
                and name
                and _same_registry(key, host)
            ):
                return name
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def run_credential_helper(
    name: str, host: str, *, timeout: float = _HELPER_TIMEOUT
) -> Credentials | None:
    """``docker-credential-NAME get`` with the server address on stdin; None when not found.

    Nothing secret goes on the command line, and the helper's output never reaches a message.
    """
    if not _HELPER_NAME_RE.fullmatch(name):
        raise RegistryError(f"credential helper name {name!r} in the docker config is not valid")
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise RegistryError(
            f"the docker config uses credential helper {name!r} for {host}, but "
            f"docker-credential-{name} is not on PATH; install it or remove it from the config"
        )
    server = _HUB_CONFIG_KEY if _is_hub(host) else host
    try:
        result = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RegistryError(
            f"credential helper docker-credential-{name} did not answer for {host} within "
            f"{timeout:g} s; it may be waiting for an unlock prompt"
        ) from None
    except OSError as exc:
        raise RegistryError(
            f"cannot run credential helper docker-credential-{name}: {exc.strerror}"
        ) from None
    output = result.stdout
    if result.returncode != 0:
        if b"credentials not found" in output.lower() or b"credentials not found" in (
            result.stderr.lower()
        ):
            return None
        raise RegistryError(
            f"credential helper docker-credential-{name} failed for {host} "
            f"(exit {result.returncode}); log in again with `docker login {host}`"
        )
    try:
        data = json.loads(output)
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise RegistryError(f"credential helper docker-credential-{name} gave unreadable output")
    username = data.get("Username")
    secret = data.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    user = username if isinstance(username, str) else ""
    if user == "<token>":
        return Credentials("", identity_token=secret)
    return Credentials(user, password=secret)


# --------------------------------------------------------------------------------------------
# HTTP plumbing


def is_loopback_host(host: str) -> bool:
    """True for ``127.0.0.0/8``, ``localhost`` and ``[::1]`` (with or without a port)."""
    text = host.strip().lower()
    if text.startswith("["):
        addr = text[1:].partition("]")[0]
    else:
        addr = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _error_detail(body: bytes, secrets: Iterable[str]) -> str:
    """``CODE: message`` pairs from a registry error body, short and scrubbed."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return ""
    parts: list[str] = []
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list):
        for err in errors[:3]:
            if isinstance(err, dict):
                code = err.get("code")
                message = err.get("message")
                parts.append(": ".join(str(x) for x in (code, message) if x))
    elif isinstance(data, dict):
        for key in ("details", "error", "message"):
            if isinstance(data.get(key), str):
                parts.append(data[key])
                break
    text = "; ".join(p for p in parts if p)
    text = re.sub(r"[\x00-\x1f\x7f]", " ", text)[:300]
    return _scrub(text, secrets)


def _error_codes(body: bytes) -> set[str]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return set()
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")}


_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "NOT_FOUND", "TAG_UNKNOWN"})


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Message
    body: bytes


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects; keep ``Authorization`` only when the origin stays the same."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        auth = req.unredirected_hdrs.get("Authorization")
        old_url = urllib.parse.urlsplit(req.full_url)
        new_url = urllib.parse.urlsplit(new.full_url)
        same_origin = (old_url.scheme, old_url.netloc) == (new_url.scheme, new_url.netloc)
        if auth and same_origin:
            new.add_unredirected_header("Authorization", auth)
        return new


def _read_limited(stream: IO[bytes], limit: int, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise RegistryError(f"{what} is larger than {limit} bytes; refusing to read it")
    return data


def _basic_header(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class RegistryClient:
    """Reads manifests, digests and image configs from OCI / Docker registries."""

    def __init__(
        self,
        *,
        docker_config: Path | None = None,
        timeout: float = 30,
        insecure_hosts: Callable[[str], bool] | None = None,
    ) -> None:
        self._config_path = docker_config if docker_config is not None else default_docker_config()
        self._timeout = timeout
        self._insecure = insecure_hosts if insecure_hosts is not None else is_loopback_host
        self._opener = urllib.request.build_opener(_RedirectHandler())
        # Loopback never goes through an HTTP(S)_PROXY from the environment.
        self._direct = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _RedirectHandler()
        )
        self._lock = threading.Lock()
        self._config: dict[str, Any] | None = None
        self._creds: dict[str, Credentials | None] = {}
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    # ---- public async API ---------------------------------------------------------------

    async def get_manifest(self, repo: Repository, reference: str) -> Manifest | None:
        """The manifest or index ``reference`` (tag or digest) names; None when it doesn't exist."""
        return await asyncio.to_thread(self.get_manifest_sync, repo, reference)

    async def head_digest(self, repo: Repository, reference: str) -> str | None:
        """The digest ``reference`` resolves to (HEAD request); None when it doesn't exist."""
        return await asyncio.to_thread(self.head_digest_sync, repo, reference)

    async def image_config(self, repo: Repository, manifest_digest: str) -> ImageConfigFacts:
        """Fetch the image manifest ``manifest_digest`` and then its config blob."""
        return await asyncio.to_thread(self.image_config_sync, repo, manifest_digest)

    # ---- synchronous implementations -----------------------------------------------------

    def get_manifest_sync(self, repo: Repository, reference: str) -> Manifest | None:
        ref = _ref_text(repo, reference)
        resp = self._fetch("GET", repo, "manifests", reference, ref, MAX_MANIFEST_BYTES)
        if resp.status == 404 and self._is_missing(resp):
            return None
        if resp.status != 200:
            raise self._status_error(ref, repo, resp)
        computed = sha256_digest(resp.body)
        self._check_digests(ref, reference, computed, resp.headers.get("Docker-Content-Digest"))
        try:
            return parse_manifest(resp.body, resp.headers.get("Content-Type"), computed, ref=ref)
        except RegistryError as exc:
            raise RegistryError(str(exc), ref=ref, status=resp.status) from None

    def head_digest_sync(self, repo: Repository, reference: str) -> str | None:
        ref = _ref_text(repo, reference)
        resp = self._fetch("HEAD", repo, "manifests", reference, ref, 0)
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._status_error(ref, repo, resp)
        header = resp.headers.get("Docker-Content-Digest")
        if header is None:
            # Some registries leave the header off HEAD answers: hash the body instead.
            manifest = self.get_manifest_sync(repo, reference)
            return manifest.digest if manifest else None
        digest = header.strip()
        if not DIGEST_RE.fullmatch(digest):
            raise RegistryError(
                f"{ref}: registry sent Docker-Content-Digest {digest[:80]!r}, not a sha256 digest",
                ref=ref,
                status=resp.status,
            )
        if DIGEST_RE.fullmatch(reference) and digest != reference:
            raise RegistryError(
                f"{ref}: registry says the digest is {digest}; the registry is inconsistent",
                ref=ref,
                status=resp.status,
            )
        return digest

    def image_config_sync(self, repo: Repository, manifest_digest: str) -> ImageConfigFacts:
        if not DIGEST_RE.fullmatch(manifest_digest):
            raise RefError(f"{manifest_digest!r} is not a sha256 digest")
        ref = repo.digest(manifest_digest)
        manifest = self.get_manifest_sync(repo, manifest_digest)
        if manifest is None:
            raise NotFound(
                f"{ref}: manifest not found (HTTP 404); check the digest and repository",
                ref=ref,
                status=404,
            )
        if manifest.config_digest is None:
            raise RegistryError(
                f"{ref} is an index ({manifest.media_type}), not an image manifest; "
                "ask for one of its platform manifests",
                ref=ref,
            )
        config_ref = f"{repo}@{manifest.config_digest} (config of {ref})"
        resp = self._fetch(
            "GET", repo, "blobs", manifest.config_digest, config_ref, MAX_CONFIG_BYTES
        )
        if resp.status == 404:
            raise NotFound(
                f"{config_ref}: config blob not found (HTTP 404); the image is incomplete, "
                "push it again",
                ref=config_ref,
                status=404,
            )
        if resp.status != 200:
            raise self._status_error(config_ref, repo, resp)
        computed = sha256_digest(resp.body)
        if computed != manifest.config_digest:
            raise RegistryError(
                f"{config_ref}: blob content hashes to {computed}; the registry or storage "
                "behind it served corrupt data",
                ref=config_ref,
            )
        try:
            return parse_image_config(resp.body)
        except RegistryError as exc:
            raise RegistryError(f"{config_ref}: {exc}", ref=config_ref) from None

    # ---- helpers ------------------------------------------------------------------------

    def _check_digests(self, ref: str, reference: str, computed: str, header: str | None) -> None:
        if header is not None and header.strip() and header.strip() != computed:
            raise RegistryError(
                f"{ref}: registry says Docker-Content-Digest {header.strip()[:80]} but the "
                f"bytes served hash to {computed}; a proxy or the registry altered the manifest",
                ref=ref,
            )
        if DIGEST_RE.fullmatch(reference) and computed != reference:
            raise RegistryError(
                f"{ref}: the manifest served hashes to {computed}; the registry served other "
                "content than the digest asked for",
                ref=ref,
            )

    @staticmethod
    def _is_missing(resp: _Response) -> bool:
        codes = _error_codes(resp.body)
        if codes:
            return bool(codes & _NOT_FOUND_CODES)
        return not resp.body.strip()

    def _secrets(self, host: str) -> tuple[str, ...]:
        with self._lock:
            creds = self._creds.get(host)
            tokens = [tok for (h, _), (tok, _) in self._tokens.items() if h == host]
        return (creds.secrets() if creds else ()) + tuple(tokens)

    def _status_error(self, ref: str, repo: Repository, resp: _Response) -> RegistryError:
        host = repo.registry
        detail = _error_detail(resp.body, self._secrets(host))
        said = f" ({detail})" if detail else ""
        status = resp.status
        if status == 401:
            msg = f"HTTP 401 Unauthorized{said}; log in with `docker login {host}`"
        elif status == 403:
            msg = (
                f"HTTP 403 Forbidden{said}; the login for {host} has no pull access to "
                f"{repo.path}: check the name or log in with `docker login {host}` as a user "
                "with access"
            )
        elif status == 404:
            return NotFound(
                f"{ref}: HTTP 404 Not Found{said}; check the repository name and that {host} "
                "is a container registry",
                ref=ref,
                status=status,
            )
        elif status == 429:
            msg = (
                f"HTTP 429 Too Many Requests{said}; the registry is rate limiting: wait and try "
                f"again, or log in with `docker login {host}` for a higher limit"
            )
        elif status >= 500:
            msg = f"HTTP {status} server error{said}; the registry failed: try again later"
        else:
            msg = (
                f"unexpected HTTP {status}{said}; check that {host} is a container registry "
                "(it should serve /v2/)"
            )
        return RegistryError(f"{ref}: {msg}", ref=ref, status=status)

    def _base_url(self, host: str) -> str:
        scheme = "http" if self._insecure(host) else "https"
        api_host = _HUB_API_HOST if _is_hub(host) else host
        return f"{scheme}://{api_host}"

    @staticmethod
    def _api_path(repo: Repository) -> str:
        if _is_hub(repo.registry) and "/" not in repo.path:
            return f"library/{repo.path}"
        return repo.path

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        auth: str | None,
        max_bytes: int,
        ref: str,
        host: str,
        data: bytes | None = None,
    ) -> _Response:
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
        if auth:
            req.add_unredirected_header("Authorization", auth)
        log.debug("%s %s", method, url)
        try:
            netloc = urllib.parse.urlsplit(url).netloc
            opener = self._direct if is_loopback_host(netloc) else self._opener
            with opener.open(req, timeout=self._timeout) as resp:
                body = b"" if method == "HEAD" else _read_limited(resp, max_bytes, ref)
                return _Response(resp.status, resp.headers, body)
        except urllib.error.HTTPError as err:
            try:
                body = b"" if method == "HEAD" else err.read(_MAX_ERROR_BODY)
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                err.close()
            return _Response(err.code, err.headers, body)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            hint = (
                "check the host name and that the registry is running; matui uses HTTPS for "
                "every registry outside loopback"
                if url.startswith("https:")
                else "check that the registry is running"
            )
            raise RegistryError(f"{ref}: cannot reach {host}: {reason}; {hint}", ref=ref) from None

    def _fetch(
        self,
        method: str,
        repo: Repository,
        kind: str,
        reference: str,
        ref: str,
        max_bytes: int,
    ) -> _Response:
        host = repo.registry
        path = self._api_path(repo)
        url = f"{self._base_url(host)}/v2/{path}/{kind}/{reference}"
        headers = {"Accept": ACCEPT} if kind == "manifests" else {}
        scope = f"repository:{path}:pull"

        auth = self._preemptive_auth(host, scope, ref)
        resp = self._send(method, url, headers, auth, max_bytes, ref, host)
        if resp.status != 401:
            return resp
        challenge = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return resp  # reported as a plain 401 by the caller
        with self._lock:
            self._challenges[host] = challenge
        if challenge.scheme == "bearer":
            token_scope = challenge.params.get("scope") or scope
            with self._lock:
                self._tokens.pop((host, token_scope), None)
            auth = "Bearer " + self._bearer_token(host, challenge, token_scope, ref)
        elif challenge.scheme == "basic":
            creds = self._credentials(host)
            if creds is None or not creds.password:
                raise RegistryError(
                    f"{ref}: HTTP 401 Unauthorized: {host} needs a login; "
                    f"log in with `docker login {host}`",
                    ref=ref,
                    status=401,
                )
            self._check_secure_for_credentials(url, host, ref)
            auth = _basic_header(creds)
        else:
            raise RegistryError(
                f"{ref}: HTTP 401 Unauthorized: {host} asks for {challenge.scheme!r} "
                "authentication, which matui does not support; use a registry token or "
                f"`docker login {host}`",
                ref=ref,
                status=401,
            )
        resp = self._send(method, url, headers, auth, max_bytes, ref, host)
        if resp.status == 401:
            creds = self._credentials(host)
            advice = (
                f"the saved login was refused: log in again with `docker login {host}`"
                if creds
                else f"log in with `docker login {host}`"
            )
            detail = _error_detail(resp.body, self._secrets(host))
            said = f" ({detail})" if detail else ""
            raise RegistryError(
                f"{ref}: HTTP 401 Unauthorized{said}; {advice}", ref=ref, status=401
            )
        return resp

    def _preemptive_auth(self, host: str, scope: str, ref: str) -> str | None:
        with self._lock:
            cached = self._tokens.get((host, scope))
            challenge = self._challenges.get(host)
        if cached and cached[1] > time.monotonic():
            return "Bearer " + cached[0]
        if challenge is None:
            return None
        if challenge.scheme == "bearer":
            return "Bearer " + self._bearer_token(host, challenge, scope, ref)
        if challenge.scheme == "basic":
            creds = self._credentials(host)
            if creds and creds.password:
                return _basic_header(creds)
        return None

    def _check_secure_for_credentials(self, url: str, host: str, ref: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" and not self._insecure(parts.netloc):
            raise RegistryError(
                f"{ref}: {host} wants credentials sent to {parts.scheme}://{parts.netloc} "
                "without TLS; refusing",
                ref=ref,
            )

    def _bearer_token(self, host: str, challenge: Challenge, scope: str, ref: str) -> str:
        with self._lock:
            cached = self._tokens.get((host, scope))
        if cached and cached[1] > time.monotonic():
            return cached[0]
        realm = challenge.params.get("realm", "")
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(
                f"{ref}: {host} sent a bearer challenge without a usable realm URL; "
                "check that it is a container registry",
                ref=ref,
                status=401,
            )
        creds = self._credentials(host)
        if creds is not None:
            self._check_secure_for_credentials(realm, host, ref)
        query: dict[str, str] = {}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        if scope:
            query["scope"] = scope
        token_ref = f"{ref} (token from {parts.netloc})"
        if creds is not None and creds.identity_token:
            form = dict(query)
            form.update(
                grant_type="refresh_token", refresh_token=creds.identity_token, client_id="matui"
            )
            resp = self._send(
                "POST",
                realm,
                {"Content-Type": "application/x-www-form-urlencoded"},
                None,
                _MAX_TOKEN_BODY,
                token_ref,
                host,
                data=urllib.parse.urlencode(form).encode(),
            )
        else:
            sep = "&" if parts.query else "?"
            url = realm + (sep + urllib.parse.urlencode(query) if query else "")
            auth = _basic_header(creds) if creds is not None and creds.password else None
            resp = self._send("GET", url, {}, auth, _MAX_TOKEN_BODY, token_ref, host)
        if resp.status in (401, 403):
            if creds is not None:
                advice = f"the saved login was refused: log in again with `docker login {host}`"
            else:
                advice = f"{host} needs a login: log in with `docker login {host}`"
            raise RegistryError(
                f"{ref}: HTTP {resp.status} from the token service {parts.netloc}; {advice}",
                ref=ref,
                status=resp.status,
            )
        if resp.status != 200:
            detail = _error_detail(resp.body, self._secrets(host))
            said = f" ({detail})" if detail else ""
            raise RegistryError(
                f"{ref}: HTTP {resp.status} from the token service {parts.netloc}{said}; "
                "try again later",
                ref=ref,
                status=resp.status,
            )
        try:
            data = json.loads(resp.body)
        except (UnicodeDecodeError, ValueError):
            data = None
        token = None
        if isinstance(data, dict):
            token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"{ref}: the token service {parts.netloc} answered without a token",
                ref=ref,
                status=resp.status,
            )
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else 60.0
        expiry = time.monotonic() + max(lifetime - _TOKEN_SLACK, 1.0)
        with self._lock:
            self._tokens[(host, scope)] = (token, expiry)
        return token

    def _credentials(self, host: str) -> Credentials | None:
        with self._lock:
            if host in self._creds:
                return self._creds[host]
            if self._config is None:
                self._config = load_docker_config(self._config_path)
            config = self._config
        creds: Credentials | None = None
        helper = credential_helper_for(config, host)
        if helper is not None:
            creds = run_credential_helper(helper, host)
        if creds is None:
            creds = credentials_from_config(config, host)
        with self._lock:
            self._creds[host] = creds
        return creds


def _ref_text(repo: Repository, reference: str) -> str:
    """``repo:tag`` or ``repo@digest``; raises RefError for anything else (never sent raw)."""
    if DIGEST_RE.fullmatch(reference):
        return f"{repo}@{reference}"
    if TAG_RE.fullmatch(reference):
        return f"{repo}:{reference}"
    raise RefError(f"{reference!r} is neither a tag nor a sha256 digest")
