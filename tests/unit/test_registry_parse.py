"""Registry client: pure parsers, docker config lookup, and auth / redirect / digest handling
against a tiny fake registry on loopback (no rig needed)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from matui.engine.arch import Platform
from matui.engine.refs import Repository, parse_repository
from matui.engine.registry import (
    ACCEPT,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Credentials,
    NotFound,
    RegistryClient,
    RegistryError,
    credential_helper_for,
    credentials_from_config,
    is_loopback_host,
    parse_image_config,
    parse_manifest,
    parse_www_authenticate,
    run_credential_helper,
    sha256_digest,
)


def d(n: int) -> str:
    """A fake but well-formed digest."""
    return "sha256:" + f"{n:x}".rjust(64, "0")


def as_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=3).encode()


# What buildx (docker-container driver) pushes for --platform linux/amd64,linux/arm/v7,linux/arm64
# with provenance on: one image manifest per platform plus attestation manifests.
OCI_INDEX = {
    "schemaVersion": 2,
    "mediaType": MEDIA_OCI_INDEX,
    "manifests": [
        {
            "mediaType": MEDIA_OCI_MANIFEST,
            "digest": d(1),
            "size": 1052,
            "platform": {"architecture": "amd64", "os": "linux"},
        },
        {
            "mediaType": MEDIA_OCI_MANIFEST,
            "digest": d(2),
            "size": 1052,
            "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
        },
        {
            "mediaType": MEDIA_OCI_MANIFEST,
            "digest": d(3),
            "size": 1052,
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        },
        {
            "mediaType": MEDIA_OCI_MANIFEST,
            "digest": d(4),
            "size": 566,
            "annotations": {
                "vnd.docker.reference.digest": d(1),
                "vnd.docker.reference.type": "attestation-manifest",
            },
            "platform": {"architecture": "unknown", "os": "unknown"},
        },
    ],
}

DOCKER_LIST = {
    "schemaVersion": 2,
    "mediaType": MEDIA_DOCKER_LIST,
    "manifests": [
        {
            "mediaType": MEDIA_DOCKER_MANIFEST,
            "digest": d(10),
            "size": 527,
            "platform": {"architecture": "amd64", "os": "linux"},
        },
        {
            "mediaType": MEDIA_DOCKER_MANIFEST,
            "digest": d(11),
            "size": 527,
            "platform": {"architecture": "arm64", "os": "linux"},
        },
        {
            "mediaType": MEDIA_DOCKER_MANIFEST,
            "digest": d(12),
            "size": 527,
            "platform": {"architecture": "mips64le", "os": "linux"},
        },
    ],
}

OCI_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": MEDIA_OCI_MANIFEST,
    "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": d(20),
        "size": 1470,
    },
    "layers": [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d(21),
            "size": 3408729,
        }
    ],
}

DOCKER_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": MEDIA_DOCKER_MANIFEST,
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 1457,
        "digest": d(30),
    },
    "layers": [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 772788,
            "digest": d(31),
        }
    ],
}

SCHEMA1 = {
    "schemaVersion": 1,
    "name": "team/app",
    "tag": "old",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": d(40)}],
    "history": [{"v1Compatibility": "{}"}],
    "signatures": [{"header": {"alg": "ES256"}, "signature": "x", "protected": "y"}],
}


def parsed(doc: dict[str, Any], media_type: str | None = None) -> Any:
    raw = as_bytes(doc)
    return parse_manifest(raw, media_type, sha256_digest(raw))


# ---- manifests ------------------------------------------------------------------------------


def test_oci_index_with_attestation_and_variants() -> None:
    raw = as_bytes(OCI_INDEX)
    m = parse_manifest(raw, MEDIA_OCI_INDEX, sha256_digest(raw))
    assert m.is_index and m.media_type == MEDIA_OCI_INDEX
    assert m.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert m.raw == raw and m.config_digest is None
    assert m.platforms() == [
        Platform("linux", "amd64"),
        Platform("linux", "arm/v7"),
        Platform("linux", "arm64"),
    ]
    att = m.entries[3]
    assert att.attestation and att.platform is None and att.attests == d(1)
    assert att.platform_text == "unknown/unknown" and att.size == 566
    assert [e.attestation for e in m.entries[:3]] == [False, False, False]
    assert m.entries[2].platform_text == "linux/arm64/v8"


def test_attestation_by_annotation_alone() -> None:
    doc = json.loads(json.dumps(OCI_INDEX))
    del doc["manifests"][3]["platform"]
    m = parsed(doc)
    assert m.entries[3].attestation and len(m.platforms()) == 3


def test_unknown_unknown_without_annotation_is_attestation() -> None:
    doc = json.loads(json.dumps(OCI_INDEX))
    del doc["manifests"][3]["annotations"]
    m = parsed(doc)
    assert m.entries[3].attestation and m.entries[3].attests is None
    assert len(m.platforms()) == 3


def test_docker_list_arm64_without_variant_and_unknown_arch() -> None:
    m = parsed(DOCKER_LIST, MEDIA_DOCKER_LIST)
    assert m.is_index and m.media_type == MEDIA_DOCKER_LIST
    assert m.platforms() == [Platform("linux", "amd64"), Platform("linux", "arm64")]
    unknown = m.entries[2]
    assert unknown.platform is None and not unknown.attestation
    assert unknown.platform_text == "linux/mips64le"


def test_duplicate_platforms_are_kept() -> None:
    doc = json.loads(json.dumps(DOCKER_LIST))
    doc["manifests"][1]["platform"]["variant"] = "v8"
    doc["manifests"][0] = dict(doc["manifests"][1], digest=d(99))
    m = parsed(doc)
    assert m.platforms()[:2] == [Platform("linux", "arm64"), Platform("linux", "arm64")]


def test_oci_manifest() -> None:
    m = parsed(OCI_MANIFEST, MEDIA_OCI_MANIFEST + "; charset=utf-8")
    assert not m.is_index and m.entries == () and m.platforms() == []
    assert m.media_type == MEDIA_OCI_MANIFEST and m.config_digest == d(20)


def test_docker_manifest() -> None:
    m = parsed(DOCKER_MANIFEST, MEDIA_DOCKER_MANIFEST)
    assert m.media_type == MEDIA_DOCKER_MANIFEST and m.config_digest == d(30)


@pytest.mark.parametrize("header", [None, "", "application/json", "text/plain; charset=utf-8"])
def test_media_type_from_body_when_header_missing_or_generic(header: str | None) -> None:
    assert parsed(DOCKER_LIST, header).media_type == MEDIA_DOCKER_LIST
    assert parsed(OCI_MANIFEST, header).media_type == MEDIA_OCI_MANIFEST


def test_media_type_inferred_when_body_omits_it() -> None:
    index = {k: v for k, v in OCI_INDEX.items() if k != "mediaType"}
    manifest = {k: v for k, v in OCI_MANIFEST.items() if k != "mediaType"}
    assert parsed(index).media_type == MEDIA_OCI_INDEX
    assert parsed(manifest).media_type == MEDIA_OCI_MANIFEST
    assert parsed(index, MEDIA_OCI_INDEX).is_index


def test_header_and_body_disagree() -> None:
    with pytest.raises(RegistryError, match=r"Content-Type .* but the manifest says"):
        parsed(DOCKER_LIST, MEDIA_OCI_INDEX)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    ],
)
def test_schema1_rejected(header: str | None) -> None:
    with pytest.raises(RegistryError, match="schema 1") as info:
        parsed(SCHEMA1, header)
    assert "push the image again" in str(info.value)


def test_non_image_artifact_rejected() -> None:
    doc = dict(OCI_MANIFEST, mediaType="application/vnd.cncf.helm.chart.content.v1.tar+gzip")
    with pytest.raises(RegistryError, match="not a container image"):
        parsed(doc)


def test_digest_must_match_bytes() -> None:
    raw = as_bytes(OCI_INDEX)
    with pytest.raises(RegistryError, match="content digest is"):
        parse_manifest(raw, MEDIA_OCI_INDEX, d(7))


@pytest.mark.parametrize(
    "raw", [b"<html>404</html>", b"[1, 2]", b'{"schemaVersion": 2}', b"\xff\xfe"]
)
def test_garbage_rejected(raw: bytes) -> None:
    with pytest.raises(RegistryError):
        parse_manifest(raw, None, sha256_digest(raw))


def test_bad_entry_digest_rejected() -> None:
    doc = json.loads(json.dumps(DOCKER_LIST))
    doc["manifests"][0]["digest"] = "sha256:XYZ"
    with pytest.raises(RegistryError, match=r"manifests\[0\]"):
        parsed(doc)


# ---- image config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "platform"),
    [
        ({"architecture": "amd64", "os": "linux"}, Platform("linux", "amd64")),
        ({"architecture": "arm64", "os": "linux", "variant": "v8"}, Platform("linux", "arm64")),
        ({"architecture": "arm64", "os": "linux"}, Platform("linux", "arm64")),
        ({"architecture": "arm", "os": "linux", "variant": "v7"}, Platform("linux", "arm/v7")),
        ({"architecture": "arm", "os": "linux", "variant": "v6"}, Platform("linux", "arm/v6")),
        ({"architecture": "unknown", "os": "unknown"}, None),
        ({"architecture": "mips64le", "os": "linux"}, None),
    ],
)
def test_image_config(config: dict[str, str], platform: Platform | None) -> None:
    doc = {"created": "2024-01-01T00:00:00Z", "config": {"Cmd": ["sh"]}, "rootfs": {}, **config}
    facts = parse_image_config(as_bytes(doc))
    assert facts.platform == platform
    assert facts.architecture == config["architecture"] and facts.os == config["os"]
    assert facts.variant == config.get("variant")


def test_image_config_without_arch_rejected() -> None:
    with pytest.raises(RegistryError, match="architecture"):
        parse_image_config(b'{"os": "linux"}')


# ---- WWW-Authenticate -----------------------------------------------------------------------


def test_bearer_challenge() -> None:
    c = parse_www_authenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:team/app:pull,push"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:team/app:pull,push",
    }


def test_basic_and_odd_challenges() -> None:
    basic = parse_www_authenticate('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert basic.params == {"realm": "Registry Realm"}
    spaced = parse_www_authenticate('BEARER realm = "r" , error="invalid_token", x=bare')
    assert spaced is not None and spaced.scheme == "bearer"
    assert spaced.params == {"realm": "r", "error": "invalid_token", "x": "bare"}
    escaped = parse_www_authenticate(r'Bearer realm="a\"b"')
    assert escaped is not None and escaped.params["realm"] == 'a"b'
    assert parse_www_authenticate("") is None
    assert parse_www_authenticate("   ") is None


# ---- docker config --------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_from_auth_field() -> None:
    config = {"auths": {"registry.example.com": {"auth": b64("alice:s3cr:et")}}}
    creds = credentials_from_config(config, "registry.example.com")
    assert creds == Credentials("alice", "s3cr:et")
    assert "s3cr" not in repr(creds)


def test_credentials_key_spellings() -> None:
    config = {"auths": {"https://registry.example.com:5000/v1/": {"auth": b64("bob:pw")}}}
    assert credentials_from_config(config, "registry.example.com:5000") == Credentials("bob", "pw")
    assert credentials_from_config(config, "registry.example.com") is None
    hub = {"auths": {"https://index.docker.io/v1/": {"auth": b64("carol:pw")}}}
    assert credentials_from_config(hub, "docker.io") == Credentials("carol", "pw")


def test_credentials_identity_token() -> None:
    config = {
        "auths": {"acr.example.io": {"auth": b64("<token>:"), "identitytoken": "refresh-xyz"}}
    }
    creds = credentials_from_config(config, "acr.example.io")
    assert creds is not None and creds.identity_token == "refresh-xyz"
    assert "refresh-xyz" not in repr(creds)


def test_credentials_missing_host() -> None:
    config = {"auths": {"other.example.com": {"auth": b64("a:b")}}}
    assert credentials_from_config(config, "registry.example.com") is None
    assert credentials_from_config({}, "registry.example.com") is None
    assert (
        credentials_from_config({"auths": {"registry.example.com": {}}}, "registry.example.com")
        is None
    )


def test_bad_auth_field_error_has_no_content() -> None:
    config = {"auths": {"r.example.com": {"auth": "!!not-base64-topsecret!!"}}}
    with pytest.raises(RegistryError, match=r"docker login r\.example\.com") as info:
        credentials_from_config(config, "r.example.com")
    assert "topsecret" not in str(info.value)


def test_credential_helper_choice() -> None:
    config = {"credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}}
    assert credential_helper_for(config, "gcr.io") == "gcloud"
    assert credential_helper_for(config, "registry.example.com") == "desktop"
    assert credential_helper_for({}, "registry.example.com") is None


def write_helper(directory: Path, name: str, body: str) -> Path:
    path = directory / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_credential_helper_gets_host_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "helper.log"
    write_helper(
        tmp_path,
        "fake",
        f'echo "argv: $*" > {log}\necho "stdin: $(cat)" >> {log}\n'
        'echo \'{"ServerURL":"r.example.com","Username":"dave","Secret":"helper-pw"}\'\n',
    )
    write_helper(
        tmp_path,
        "none",
        'cat >/dev/null\necho "credentials not found in native keychain"\nexit 1\n',
    )
    write_helper(tmp_path, "broken", "cat >/dev/null\necho 'helper-pw' >&2\nexit 3\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert run_credential_helper("fake", "r.example.com") == Credentials("dave", "helper-pw")
    assert log.read_text() == "argv: get\nstdin: r.example.com\n"
    assert run_credential_helper("none", "r.example.com") is None
    with pytest.raises(RegistryError, match="exit 3") as info:
        run_credential_helper("broken", "r.example.com")
    assert "helper-pw" not in str(info.value)
    with pytest.raises(RegistryError, match="not on PATH"):
        run_credential_helper("absent", "r.example.com")
    with pytest.raises(RegistryError, match="not valid"):
        run_credential_helper("../evil", "r.example.com")


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1:5000", "127.3.4.5", "localhost:5000", "localhost", "[::1]:5000"):
        assert is_loopback_host(host), host
    for host in ("registry.example.com", "10.0.0.1:5000", "localhost.example.com", "[fe80::1]"):
        assert not is_loopback_host(host), host


# ---- fake registry --------------------------------------------------------------------------

USER, PASSWORD = "erin", "hunter2-correct-horse"
TOKEN = "tok-" + "z" * 20


@dataclass
class Fake:
    """Behaviour switches and request records for the fake registry."""

    auth: str = "none"  # none | bearer | basic
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    wrong_digest_header: bool = False
    redirect_blobs_to: str | None = None
    echo_password_in_errors: bool = False
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    token_requests: int = 0
    port: int = 0


def make_handler(fake: Fake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def error(
            self, code: int, err: str, message: str, headers: dict[str, str] | None = None
        ) -> None:
            body = json.dumps({"errors": [{"code": err, "message": message}]}).encode()
            self.send(code, body, {"Content-Type": "application/json", **(headers or {})})

        def authorised(self) -> bool:
            got = self.headers.get("Authorization")
            if fake.auth == "bearer":
                return got == f"Bearer {TOKEN}"
            if fake.auth == "basic":
                return got == "Basic " + b64(f"{USER}:{PASSWORD}")
            return True

        def do_POST(self) -> None:
            fake.requests.append(("POST", self.path, self.headers.get("Authorization")))
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(pair.split("=", 1) for pair in self.rfile.read(length).decode().split("&"))
            fake.token_requests += 1
            if (
                form.get("refresh_token") == "refresh-good"
                and form.get("grant_type") == "refresh_token"
            ):
                self.send(200, json.dumps({"access_token": TOKEN, "expires_in": 300}).encode())
            else:
                self.send(401, b'{"details":"invalid refresh token"}')

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            fake.requests.append((self.command, self.path, self.headers.get("Authorization")))
            if self.path.startswith("/token"):
                fake.token_requests += 1
                if self.headers.get("Authorization") == "Basic " + b64(f"{USER}:{PASSWORD}"):
                    self.send(200, json.dumps({"token": TOKEN, "expires_in": 300}).encode())
                else:
                    self.send(401, b'{"details":"incorrect username or password"}')
                return
            if self.path.startswith("/storage/"):
                self.send(200, fake.blobs[self.path.removeprefix("/storage/")])
                return
            if not self.authorised():
                challenge = (
                    f'Bearer realm="http://127.0.0.1:{fake.port}/token",service="fake",'
                    'scope="repository:team/app:pull"'
                    if fake.auth == "bearer"
                    else 'Basic realm="fake"'
                )
                message = "authentication required"
                sent = self.headers.get("Authorization") or ""
                if fake.echo_password_in_errors and sent.startswith("Basic "):
                    # A careless registry echoing what it was sent, decoded and not.
                    pair = base64.b64decode(sent.removeprefix("Basic ")).decode()
                    message += f" (got {sent}; user:password {pair})"
                self.error(401, "UNAUTHORIZED", message, {"WWW-Authenticate": challenge})
                return
            _, _, name_kind_ref = self.path.partition("/v2/")
            _name, kind, ref = name_kind_ref.rsplit("/", 2)
            if kind == "manifests":
                if ref not in fake.manifests:
                    self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                    return
                raw, media_type = fake.manifests[ref]
                digest = d(5) if fake.wrong_digest_header else sha256_digest(raw)
                self.send(200, raw, {"Content-Type": media_type, "Docker-Content-Digest": digest})
            elif kind == "blobs":
                if ref not in fake.blobs:
                    self.error(404, "BLOB_UNKNOWN", "blob unknown")
                elif fake.redirect_blobs_to:
                    self.send(307, b"", {"Location": f"{fake.redirect_blobs_to}/storage/{ref}"})
                else:
                    self.send(200, fake.blobs[ref])
            else:
                self.send(400, b"")

    return Handler


@pytest.fixture
def server() -> Iterator[Callable[[Fake], str]]:
    started: list[ThreadingHTTPServer] = []

    def start(fake: Fake, host: str = "127.0.0.1") -> str:
        httpd = ThreadingHTTPServer((host, 0), make_handler(fake))
        fake.port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        started.append(httpd)
        return f"{host}:{fake.port}"

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def config_file(tmp_path: Path, entry: dict[str, str] | None, host: str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {host: entry}} if entry else {}))
    return path


def image_fixture(fake: Fake) -> tuple[str, str]:
    """An image (docker manifest + config) plus a list pointing at it; returns the two digests."""
    config = as_bytes({"architecture": "arm", "os": "linux", "variant": "v7", "rootfs": {}})
    manifest = as_bytes(
        dict(DOCKER_MANIFEST, config={**DOCKER_MANIFEST["config"], "digest": sha256_digest(config)})
    )
    fake.blobs[sha256_digest(config)] = config
    fake.manifests[sha256_digest(manifest)] = (manifest, MEDIA_DOCKER_MANIFEST)
    index = as_bytes(DOCKER_LIST)
    fake.manifests["v1"] = (index, MEDIA_DOCKER_LIST)
    fake.manifests[sha256_digest(index)] = (index, MEDIA_DOCKER_LIST)
    return sha256_digest(index), sha256_digest(manifest)


def repo(host: str) -> Repository:
    return parse_repository(f"{host}/team/app")


async def test_anonymous_read_and_accept_header(
    server: Callable[[Fake], str], tmp_path: Path
) -> None:
    fake = Fake()
    index_digest, image_digest = image_fixture(fake)
    host = server(fake)
    client = RegistryClient(docker_config=tmp_path / "absent.json")
    m = await client.get_manifest(repo(host), "v1")
    assert m is not None and m.digest == index_digest and m.is_index
    assert await client.head_digest(repo(host), "v1") == index_digest
    assert await client.get_manifest(repo(host), "nope") is None
    assert await client.head_digest(repo(host), "nope") is None
    facts = await client.image_config(repo(host), image_digest)
    assert facts.platform == Platform("linux", "arm/v7")
    with pytest.raises(NotFound):
        await client.image_config(repo(host), d(77))
    with pytest.raises(RegistryError, match="is an index"):
        await client.image_config(repo(host), index_digest)
    assert all(auth is None for _, _, auth in fake.requests)
    assert ACCEPT.count("application/") == 4


async def test_bearer_flow_with_basic_credentials_and_token_cache(
    server: Callable[[Fake], str], tmp_path: Path
) -> None:
    fake = Fake(auth="bearer")
    index_digest, image_digest = image_fixture(fake)
    host = server(fake)
    cfg = config_file(tmp_path, {"auth": b64(f"{USER}:{PASSWORD}")}, host)
    client = RegistryClient(docker_config=cfg)
    m = await client.get_manifest(repo(host), "v1")
    assert m is not None and m.digest == index_digest
    assert await client.head_digest(repo(host), "v1") == index_digest
    await client.image_config(repo(host), image_digest)
    assert fake.token_requests == 1
    token_query = next(path for _, path, _ in fake.requests if path.startswith("/token"))
    assert "service=fake" in token_query and "scope=repository%3Ateam%2Fapp%3Apull" in token_query


async def test_identity_token_uses_oauth_post(
    server: Callable[[Fake], str], tmp_path: Path
) -> None:
    fake = Fake(auth="bearer")
    image_fixture(fake)
    host = server(fake)
    cfg = config_file(tmp_path, {"auth": b64("<token>:"), "identitytoken": "refresh-good"}, host)
    client = RegistryClient(docker_config=cfg)
    assert await client.get_manifest(repo(host), "v1") is not None
    assert any(method == "POST" for method, _, _ in fake.requests)


async def test_bearer_without_login_says_how_to_log_in(
    server: Callable[[Fake], str], tmp_path: Path
) -> None:
    fake = Fake(auth="bearer")
    image_fixture(fake)
    host = server(fake)
    client = RegistryClient(docker_config=config_file(tmp_path, None, host))
    with pytest.raises(RegistryError, match=f"docker login {host}") as info:
        await client.get_manifest(repo(host), "v1")
    assert info.value.status == 401 and "team/app:v1" in str(info.value)


@pytest.mark.parametrize("auth", ["bearer", "basic"])
async def test_wrong_password_never_in_error(
    server: Callable[[Fake], str], tmp_path: Path, auth: str
) -> None:
    fake = Fake(auth=auth, echo_password_in_errors=True)
    image_fixture(fake)
    host = server(fake)
    wrong = "wrong-pw-" + PASSWORD[::-1]
    cfg = config_file(tmp_path, {"auth": b64(f"{USER}:{wrong}")}, host)
    client = RegistryClient(docker_config=cfg)
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(repo(host), "v1")
    text = str(info.value) + repr(info.value)
    assert "401" in text and f"docker login {host}" in text
    for secret in (wrong, b64(f"{USER}:{wrong}")):
        assert secret not in text


async def test_basic_flow(server: Callable[[Fake], str], tmp_path: Path) -> None:
    fake = Fake(auth="basic")
    index_digest, _ = image_fixture(fake)
    host = server(fake)
    cfg = config_file(tmp_path, {"auth": b64(f"{USER}:{PASSWORD}")}, host)
    client = RegistryClient(docker_config=cfg)
    assert await client.head_digest(repo(host), "v1") == index_digest
    m = await client.get_manifest(repo(host), "v1")
    assert m is not None
    # After the first challenge, basic credentials are sent up front.
    assert [auth is None for _, _, auth in fake.requests] == [True, False, False]


async def test_blob_redirect_to_other_host_drops_authorization(
    server: Callable[..., str], tmp_path: Path
) -> None:
    storage = Fake()
    storage_host = server(storage, "localhost")  # another origin, still loopback
    fake = Fake(auth="bearer", redirect_blobs_to=f"http://{storage_host}")
    _, image_digest = image_fixture(fake)
    storage.blobs.update(fake.blobs)
    host = server(fake)
    cfg = config_file(tmp_path, {"auth": b64(f"{USER}:{PASSWORD}")}, host)
    client = RegistryClient(docker_config=cfg)
    facts = await client.image_config(repo(host), image_digest)
    assert facts.platform == Platform("linux", "arm/v7")
    assert storage.requests and all(auth is None for _, _, auth in storage.requests)
    blob_get = [a for _, path, a in fake.requests if "/blobs/" in path]
    assert blob_get[-1] == f"Bearer {TOKEN}"


async def test_digest_header_mismatch_is_an_error(
    server: Callable[[Fake], str], tmp_path: Path
) -> None:
    fake = Fake(wrong_digest_header=True)
    image_fixture(fake)
    host = server(fake)
    client = RegistryClient(docker_config=tmp_path / "absent.json")
    with pytest.raises(RegistryError, match="Docker-Content-Digest"):
        await client.get_manifest(repo(host), "v1")


async def test_served_bytes_must_match_digest_asked_for(
    server: Callable[[Fake], str], tmp_path: Path
) -> None:
    fake = Fake()
    image_fixture(fake)
    fake.manifests[d(6)] = fake.manifests["v1"]  # wrong content under a digest
    host = server(fake)
    client = RegistryClient(docker_config=tmp_path / "absent.json")
    with pytest.raises(RegistryError, match="hashes to"):
        await client.get_manifest(repo(host), d(6))


async def test_unreachable_registry(tmp_path: Path) -> None:
    client = RegistryClient(docker_config=tmp_path / "absent.json", timeout=5)
    with pytest.raises(RegistryError, match=r"cannot reach 127\.0\.0\.1:9"):
        await client.get_manifest(parse_repository("127.0.0.1:9/team/app"), "v1")


async def test_invalid_reference_is_never_sent(tmp_path: Path) -> None:
    client = RegistryClient(docker_config=tmp_path / "absent.json")
    with pytest.raises(ValueError):
        await client.get_manifest(parse_repository("127.0.0.1:9/team/app"), "../../x")
