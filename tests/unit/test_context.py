"""stream_context: a deterministic, bounded-memory tar stream of a build context."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from matui.engine.build import context as context_mod
from matui.engine.build.context import ContextStats, stream_context
from matui.engine.build.dockerignore import DockerIgnore

MTIME = 1_700_000_000


class Collect:
    """A ``write`` callback that keeps everything (for small contexts)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.chunks = 0

    async def __call__(self, chunk: bytes) -> None:
        self.buf.write(chunk)
        self.chunks += 1

    def members(self) -> list[tarfile.TarInfo]:
        with tarfile.open(fileobj=io.BytesIO(self.buf.getvalue()), mode="r:") as tar:
            return tar.getmembers()

    def names(self) -> list[str]:
        return [m.name for m in self.members()]


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)


def _make_context(root: Path) -> None:
    _write(root / "Dockerfile", "FROM busybox\nCOPY . /src\n")
    _write(root / "run.sh", "#!/bin/sh\necho hi\n", 0o755)
    _write(root / "secret.key", "k", 0o600)
    _write(root / "src" / "main.go", "package main\n")
    _write(root / "src" / "deep" / "x" / "y.txt", "y" * 5000)
    _write(root / "ünïcode name.txt", "u")
    _write(root / ("long" * 40) / ("name" * 30), "long path, needs a pax header")
    (root / "empty").mkdir()
    (root / "private").mkdir(mode=0o700)
    (root / "private").chmod(0o700)
    (root / "src" / "link-in").symlink_to("main.go")
    (root / "escape").symlink_to("../../outside/file")  # a link out of the context: just a link
    (root / "abs").symlink_to("/etc/passwd")
    os.link(root / "run.sh", root / "run-hardlink.sh")
    os.mkfifo(root / "fifo")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)


def _snapshot(root: Path) -> dict[str, tuple[str, int, int | None, bytes | str]]:
    """rel -> (kind, mode, mtime, content or link target), for everything but the root."""
    out: dict[str, tuple[str, int, int | None, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", 0, None, os.readlink(path))  # extraction does not set link times
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime), b"")
        elif stat.S_ISREG(st.st_mode):
            out[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), path.read_bytes())
    return out


async def test_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "ctx"
    _make_context(src)
    sink = Collect()
    stats = await stream_context(src, "Dockerfile", sink, chunk_size=4096)

    data = sink.buf.getvalue()
    assert isinstance(stats, ContextStats)
    assert (stats.files, stats.bytes) == (8, len(data))
    sent = {m.name for m in sink.members() if m.isreg() or m.islnk() or m.issym()}
    assert set(stats.source.files) == sent
    assert sink.chunks > 1

    members = sink.members()
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in members)
    by_name = {m.name: m for m in members}
    assert "fifo" not in by_name  # skipped, no error
    assert by_name["escape"].issym() and by_name["escape"].linkname == "../../outside/file"
    # the second name of a hard-linked file (in sorted order) is sent as a link to the first
    assert by_name["run-hardlink.sh"].isreg()
    assert by_name["run.sh"].islnk() and by_name["run.sh"].linkname == "run-hardlink.sh"
    assert by_name["secret.key"].mode == 0o600
    assert by_name["private"].mode == 0o700

    # Extract with GNU tar, a reader independent of the writer (Python's tarfile): it also runs
    # on Python 3.11.2, whose tarfile has no ``filter=`` (3.11.4+) and whose default would differ
    # from 3.14's. ``-p`` keeps the modes as sent whatever the umask.
    dest = tmp_path / "out"
    dest.mkdir()
    subprocess.run(["tar", "-x", "-p", "-f", "-", "-C", str(dest)], input=data, check=True)
    expected = _snapshot(src)  # regular files, dirs and links only: no fifo
    assert len(expected) == 17
    assert _snapshot(dest) == expected


async def test_dockerignore_honoured(tmp_path: Path) -> None:
    _write(tmp_path / "Dockerfile", "FROM scratch\n")
    _write(tmp_path / ".dockerignore", "*.log\nnode_modules\nsecret/\n!secret/public\n")
    for rel in ["a.log", "keep.txt", "node_modules/pkg/index.js", "secret/key", "secret/public"]:
        _write(tmp_path / rel, rel)
    sink = Collect()
    stats = await stream_context(tmp_path, "Dockerfile", sink)
    assert sink.names() == [
        ".dockerignore",
        "Dockerfile",
        "keep.txt",
        "secret",
        "secret/public",
    ]
    assert stats.files == 4


async def test_dockerfile_and_dockerignore_always_sent(tmp_path: Path) -> None:
    _write(tmp_path / ".dockerignore", "*\n!app\n")
    _write(tmp_path / "docker" / "Dockerfile.prod", "FROM scratch\n")
    _write(tmp_path / "docker" / "other", "no")
    _write(tmp_path / "app" / "main.py", "print()")
    sink = Collect()
    await stream_context(tmp_path, "docker/Dockerfile.prod", sink)
    assert sink.names() == [
        ".dockerignore",
        "app",
        "app/main.py",
        "docker",
        "docker/Dockerfile.prod",
    ]


async def test_dockerfile_given_as_absolute_or_unclean_path(tmp_path: Path) -> None:
    _write(tmp_path / "sub" / "Dockerfile", "FROM scratch\n")
    _write(tmp_path / ".dockerignore", "sub\n")
    for given in [str(tmp_path / "sub" / "Dockerfile"), "./x/../sub//Dockerfile"]:
        sink = Collect()
        await stream_context(tmp_path, given, sink)
        assert sink.names() == [".dockerignore", "sub", "sub/Dockerfile"]


async def test_symlinked_dockerfile_sends_target(tmp_path: Path) -> None:
    _write(tmp_path / "build" / "Dockerfile.real", "FROM scratch\n")
    (tmp_path / "Dockerfile").symlink_to("build/Dockerfile.real")
    _write(tmp_path / ".dockerignore", "build\nDockerfile\n")
    sink = Collect()
    await stream_context(tmp_path, "Dockerfile", sink)
    assert sink.names() == [".dockerignore", "Dockerfile", "build", "build/Dockerfile.real"]


@pytest.mark.parametrize("given", ["../Dockerfile", "/etc/hostname", "sub/../../Dockerfile"])
async def test_dockerfile_outside_context_refused(tmp_path: Path, given: str) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    _write(tmp_path / "Dockerfile", "FROM scratch\n")
    sink = Collect()
    with pytest.raises(ValueError, match=r"outside the build context.*move the Dockerfile") as err:
        await stream_context(ctx, given, sink)
    assert repr(given) in str(err.value)
    assert sink.chunks == 0


async def test_dockerfile_escaping_through_symlink_refused(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _write(tmp_path / "Dockerfile", "FROM scratch\n")
    (ctx / "Dockerfile").symlink_to("../Dockerfile")
    with pytest.raises(ValueError, match="resolves through a symlink"):
        await stream_context(ctx, "Dockerfile", Collect())


async def test_missing_dockerfile_or_context_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found in the build context"):
        await stream_context(tmp_path, "Dockerfile", Collect())
    with pytest.raises(ValueError, match="not a directory"):
        await stream_context(tmp_path / "nope", "Dockerfile", Collect())


async def test_sockets_and_fifos_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "Dockerfile", "FROM scratch\n")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        sink = Collect()
        await stream_context(tmp_path, "Dockerfile", sink)
        assert sink.names() == ["Dockerfile"]
    finally:
        sock.close()


async def test_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 200 * 1024 * 1024
    _write(tmp_path / "Dockerfile", "FROM scratch\n")
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(size)  # sparse: cheap on disk, still 200 MB to read and send
    sent = 0
    largest = 0

    async def discard(chunk: bytes) -> None:
        # a little slower than the tar writer, as a network is: without back-pressure the
        # chunks would pile up in memory (an unbounded queue peaks above 30 MiB here)
        nonlocal sent, largest
        sent += len(chunk)
        largest = max(largest, len(chunk))
        await asyncio.sleep(0.001)

    tracemalloc.start()
    try:
        stats = await stream_context(tmp_path, "Dockerfile", discard)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert stats.bytes == sent > size
    assert largest == 256 * 1024
    assert stats.files == 2


async def test_error_while_reading_context_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_context(tmp_path)
    real_walk = DockerIgnore.walk

    def failing_walk(
        self: DockerIgnore, context: Path, always_include: object = ()
    ) -> Iterator[tuple[str, Path]]:
        for n, entry in enumerate(real_walk(self, context, ["Dockerfile"])):
            if n == 5:
                raise OSError("disk on fire")
            yield entry

    monkeypatch.setattr(DockerIgnore, "walk", failing_walk)
    sink = Collect()
    with pytest.raises(OSError, match="disk on fire"):
        await stream_context(tmp_path, "Dockerfile", sink, chunk_size=512)
    assert sink.chunks > 0  # it failed mid-stream, not before starting


class _Counting:
    """Counts the files the tar writer adds, and notes when the writer has returned or raised
    (its thread then adds nothing more)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files = 0
        self.writer_ended = threading.Event()
        real_add = context_mod._add_file
        real_write = context_mod._write_tar

        def counted(*args: object, **kwargs: object) -> int:
            self.files += 1
            return real_add(*args, **kwargs)  # type: ignore[arg-type]

        def write_tar(*args: object, **kwargs: object) -> int:
            try:
                return real_write(*args, **kwargs)  # type: ignore[arg-type]
            finally:
                self.writer_ended.set()

        monkeypatch.setattr(context_mod, "_add_file", counted)
        monkeypatch.setattr(context_mod, "_write_tar", write_tar)


def _many_files(root: Path, count: int) -> None:
    _write(root / "Dockerfile", "FROM scratch\n")
    for i in range(count):
        _write(root / f"f{i:04d}", os.urandom(64 * 1024))


async def test_error_in_write_propagates_and_stops_the_tar_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _many_files(tmp_path, 200)
    counting = _Counting(monkeypatch)
    calls = 0

    async def broken(chunk: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionResetError("builder went away")

    with pytest.raises(ConnectionResetError, match="builder went away"):
        await stream_context(tmp_path, "Dockerfile", broken, chunk_size=64 * 1024)
    # stream_context returns only once the tar writer has stopped, well before the end.
    assert counting.writer_ended.is_set()
    assert counting.files < 50


async def test_cancellation_stops_the_tar_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _many_files(tmp_path, 200)
    counting = _Counting(monkeypatch)
    started = asyncio.Event()

    async def stuck(chunk: bytes) -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(stream_context(tmp_path, "Dockerfile", stuck))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counting.writer_ended.is_set()
    assert counting.files < 50


async def test_sha256_is_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "a"
    _make_context(src)
    (src / "fifo").unlink()
    first, second = Collect(), Collect()
    one = await stream_context(src, "Dockerfile", first, chunk_size=1000)
    two = await stream_context(src, "Dockerfile", second, chunk_size=300_000)
    assert one == two
    assert first.buf.getvalue() == second.buf.getvalue()

    copy = tmp_path / "b"
    shutil.copytree(src, copy, symlinks=True)  # same content, names, modes and mtimes
    os.utime(copy, (MTIME, MTIME))
    # copytree makes a hard link pair into two files; restore it so the trees really match
    (copy / "run-hardlink.sh").unlink()
    os.link(copy / "run.sh", copy / "run-hardlink.sh")
    assert await stream_context(copy, "Dockerfile", Collect()) == one

    _write(src / "src" / "main.go", "package main // changed\n")
    os.utime(src / "src" / "main.go", (MTIME, MTIME))
    assert (await stream_context(src, "Dockerfile", Collect())).source.digest != one.source.digest


async def test_bad_chunk_size_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        await stream_context(tmp_path, "Dockerfile", Collect(), chunk_size=0)
