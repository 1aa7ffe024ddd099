"""OCI reference grammar: repositories, tags, digests.

Patterns follow the distribution reference grammar, restricted to ASCII and always matched with
``fullmatch`` (``$`` would accept a trailing newline, ``\\w`` would accept non-ASCII letters).
Every value that reaches a registry or a remote command is checked here first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"

TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}", re.ASCII)
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)

_MAX_NAME = 255


class RefError(ValueError):
    """A value that is not valid under the OCI reference grammar."""


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise RefError(
            f"{tag!r} is not a valid tag; tags are 1-128 characters of A-Z a-z 0-9 _ . - "
            "and may not start with . or -"
        )
    return tag


def check_digest(digest: str) -> str:
    if not DIGEST_RE.fullmatch(digest):
        raise RefError(f"{digest!r} is not a sha256 digest (sha256: followed by 64 hex digits)")
    return digest


@dataclass(frozen=True)
class Repository:
    """A repository with its registry host, e.g. ``registry.example.com:5000/team/app``."""

    registry: str
    path: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"

    def tag(self, tag: str) -> str:
        return f"{self}:{check_tag(tag)}"

    def digest(self, digest: str) -> str:
        return f"{self}@{check_digest(digest)}"


def parse_repository(name: str) -> Repository:
    """Parse a full repository name; the registry host must be explicit.

    matui never guesses Docker Hub: a release pushed to the wrong registry is worse than an error.
    """
    if not name.isascii() or any(ch.isspace() for ch in name):
        raise RefError(f"{name!r} is not a repository name; use ASCII without spaces")
    if len(name) > _MAX_NAME:
        raise RefError(f"{name!r} is longer than {_MAX_NAME} characters")
    if "@" in name or name.rsplit("/", 1)[-1].count(":"):
        raise RefError(
            f"{name!r} includes a tag or digest; give the repository alone "
            "(e.g. registry.example.com/team/app) and list tags under tags"
        )
    registry, sep, path = name.partition("/")
    looks_like_host = "." in registry or ":" in registry or registry == "localhost"
    if not sep or not looks_like_host:
        raise RefError(
            f"{name!r} has no registry host; write it in full, "
            "e.g. registry.example.com/team/app or 127.0.0.1:5000/app"
        )
    if not _DOMAIN_RE.fullmatch(registry):
        raise RefError(f"{name!r}: {registry!r} is not a valid registry host[:port]")
    if not _PATH_RE.fullmatch(path):
        raise RefError(
            f"{name!r}: {path!r} is not a valid repository path; path components are lowercase "
            "letters and digits, separated by . _ __ or -"
        )
    return Repository(registry, path)
