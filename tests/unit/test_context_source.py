"""The source a job was built from: hashed while the context streams, one digest per tree."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from matui.engine.build.context import SourceManifest, source_entry, stream_context


async def _discard(chunk: bytes) -> None:
    del chunk


def _write(path: Path, data: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    path.chmod(mode)


def _tree(root: Path) -> None:
    _write(root / "Dockerfile", "FROM busybox\nCOPY . /src\n")
    _write(root / "run.sh", "#!/bin/sh\necho hi\n", 0o755)
    _write(root / "src" / "main.go", "package main\n")
    _write(root / "big.bin", "x" * 1_000_000)
    (root / "link").symlink_to("src/main.go")


async def _source(root: Path, dockerfile: str = "Dockerfile") -> SourceManifest:
    stats = await stream_context(root, dockerfile, _discard, chunk_size=4096)
    return stats.source


async def test_same_tree_same_digest_and_entries_are_content_digests(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _tree(a)
    _tree(b)
    os.utime(b / "Dockerfile", (1, 1))  # mtimes are not the source
    first, second = await _source(a), await _source(b)
    assert first.digest == second.digest
    assert first.digest.startswith("sha256:") and len(first.digest) == 7 + 64
    assert first.files == second.files
    content = hashlib.sha256(b"x" * 1_000_000).hexdigest()
    assert first.files["big.bin"] == f"sha256:{content}"
    assert first.files["run.sh"].endswith(" +x")
    assert first.files["link"] == "symlink:src/main.go"
    assert "src" not in first.files  # directories are implied by their contents
    assert first == SourceManifest.of(first.files)


async def test_one_byte_changed_names_that_file(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = await _source(tmp_path)
    _write(tmp_path / "Dockerfile", "FROM busybox\nCOPY . /src/\n")
    after = await _source(tmp_path)
    assert before.digest != after.digest
    changed = {
        p
        for p in before.files.keys() | after.files.keys()
        if before.files.get(p) != after.files.get(p)
    }
    assert changed == {"Dockerfile"}


async def test_mode_and_link_target_count(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = await _source(tmp_path)
    (tmp_path / "src" / "main.go").chmod(0o755)
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("run.sh")
    after = await _source(tmp_path)
    changed = {p for p in before.files if before.files[p] != after.files.get(p)}
    assert changed == {"src/main.go", "link"}


async def test_dockerignored_files_do_not_count(tmp_path: Path) -> None:
    _tree(tmp_path)
    _write(tmp_path / ".dockerignore", "*.log\nscratch/\n")
    _write(tmp_path / "build.log", "one")
    before = await _source(tmp_path)
    _write(tmp_path / "build.log", "two")
    _write(tmp_path / "scratch" / "new.txt", "new")
    after = await _source(tmp_path)
    assert before.digest == after.digest
    assert "build.log" not in after.files
    assert ".dockerignore" in after.files  # it is sent, so it is part of the source


async def test_hard_link_has_its_targets_entry(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.link(tmp_path / "run.sh", tmp_path / "run-again.sh")
    source = await _source(tmp_path)
    assert source.files["run-again.sh"] == source.files["run.sh"]


async def test_dockerfile_elsewhere_in_the_context_is_in_the_source(tmp_path: Path) -> None:
    _tree(tmp_path)
    _write(tmp_path / ".dockerignore", "docker/\n")
    _write(tmp_path / "docker" / "Dockerfile.prod", "FROM busybox\n")
    source = await _source(tmp_path, "docker/Dockerfile.prod")
    assert source.files["docker/Dockerfile.prod"] == source_entry(
        hashlib.sha256(b"FROM busybox\n").hexdigest(), 0o644
    )
