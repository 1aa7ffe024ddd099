"""`docker buildx version` is asked once per push, not once per question."""

from __future__ import annotations

import pytest

from matui.engine import publish


def test_buildx_version_is_reused_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def ask() -> str:
        asked.append(1)
        return "github.com/docker/buildx v0.13.1"

    monkeypatch.setattr(publish, "_ask_buildx_version", ask)
    monkeypatch.setattr(publish, "_buildx_seen", {})
    assert publish.local_buildx_available()
    assert publish.local_buildx_version() == "github.com/docker/buildx v0.13.1"
    assert len(asked) == 1
    monkeypatch.setenv("DOCKER_HOST", "unix:///elsewhere.sock")
    publish.local_buildx_version()
    assert len(asked) == 2
    monkeypatch.setattr(publish, "_BUILDX_TTL", 0.0)
    publish.local_buildx_version()
    assert len(asked) == 3
