"""A registry in memory for the pure gatherers' unit tests: manifests by (repository, tag or
digest) and image configs by digest, answering as :class:`~matui.engine.flags.RegistryReader`
asks (the rig's real registry is for the integration tests)."""

from __future__ import annotations

from matui.engine.refs import Repository
from matui.engine.registry import ImageConfigFacts, Manifest


class FakeRegistry:
    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], Manifest] = {}
        self.configs: dict[str, ImageConfigFacts] = {}

    def put(self, repo: Repository, manifest: Manifest, *tags: str) -> None:
        for ref in (manifest.digest, *tags):
            self.manifests[(str(repo), ref)] = manifest

    async def get_manifest(self, repo: Repository, reference: str) -> Manifest | None:
        return self.manifests.get((str(repo), reference))

    async def head_digest(self, repo: Repository, reference: str) -> str | None:
        found = self.manifests.get((str(repo), reference))
        return found.digest if found else None

    async def image_config(self, repo: Repository, manifest_digest: str) -> ImageConfigFacts:
        return self.configs[manifest_digest]
