"""HTTP plumbing: the registry client (token dance, retries, bounded reads) behind async methods."""

from __future__ import annotations

import asyncio
import base64
import http.client
import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Any

from matui.engine.refs import DIGEST_RE, TAG_RE, RefError, Repository
from matui.engine.registry.credentials import (
    _is_hub,
    credential_helper_for,
    credentials_from_config,
    default_docker_config,
    load_docker_config,
    run_credential_helper,
)
from matui.engine.registry.model import (
    _HUB_API_HOST,
    _MAX_ERROR_BODY,
    _MAX_TOKEN_BODY,
    _TOKEN_SLACK,
    ACCEPT,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    Challenge,
    Credentials,
    ImageConfigFacts,
    Manifest,
    NotFound,
    RegistryError,
    log,
)
from matui.engine.registry.parse import (
    parse_image_config,
    parse_manifest,
    parse_www_authenticate,
    sha256_digest,
)

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
