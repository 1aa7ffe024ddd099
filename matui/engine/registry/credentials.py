"""Docker's config.json and credential helpers: the credentials matui presents, read the way
docker reads them."""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matui.engine.registry.model import (
    _HELPER_NAME_RE,
    _HELPER_TIMEOUT,
    _HUB_CONFIG_KEY,
    _HUB_HOSTS,
    Credentials,
    RegistryError,
)

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
