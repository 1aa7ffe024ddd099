"""Stream a local build context to a builder as an uncompressed tar, in bounded memory.

A worker thread walks the context (honouring ``.dockerignore``) and writes a tar with
:mod:`tarfile` in streaming mode into a small file-like sink; the sink cuts the stream into
chunks and hands them through a bounded :class:`asyncio.Queue` to the calling coroutine, which
passes each to ``write``. A slow ``write`` therefore stalls the tar writer instead of letting
data pile up: at most ``queue depth x chunk size`` bytes are in flight, however big the context.

The archive is deterministic for a given tree: entries in sorted order, uid/gid 0, no user or
group names, whole-second mtimes. Symlinks are sent as links and never followed (one pointing
outside the context is still just a link); sockets, FIFOs and devices are skipped.

While it streams, each file's bytes are hashed as tarfile reads them (no second read of the
tree), giving the *source* a job was built from: a manifest of what every path held
(:class:`SourceManifest`) and one digest over it. The source counts what a build can see —
paths, contents, the executable bit, symlink targets — and not mtimes or owners, so touching a
file leaves it alone while a one-byte edit to the Dockerfile changes it and names the file. The
Dockerfile is always inside the context (:func:`_resolve_dockerfile` refuses one outside), so
the context's source covers it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from matui.engine.build.dockerignore import IGNORE_FILE, DockerIgnore

__all__ = ["ContextStats", "SourceManifest", "source_entry", "stream_context"]

QUEUE_DEPTH = 8
_PUT_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class SourceManifest:
    """What a context held, path by path: the source a build saw.

    ``files`` maps each context-relative path sent to its entry (:func:`source_entry`):
    ``sha256:<hex>`` for a regular file (`` +x`` when executable), ``symlink:<target>`` for a
    link. Directories are implied by their contents. ``digest`` is one sha256 over the sorted
    entries: two contexts with the same digest built the same thing.
    """

    files: dict[str, str]
    digest: str

    @classmethod
    def of(cls, files: dict[str, str]) -> SourceManifest:
        h = hashlib.sha256()
        for path in sorted(files):
            h.update(path.encode("utf-8", "surrogateescape"))
            h.update(b"\0")
            h.update(files[path].encode("utf-8", "surrogateescape"))
            h.update(b"\n")
        return cls(dict(sorted(files.items())), "sha256:" + h.hexdigest())


def source_entry(content_sha256: str, mode: int) -> str:
    """A regular file's manifest entry: its content digest, and ``+x`` when any execute bit is
    set (COPY keeps modes, so a chmod changes what the image holds)."""
    return f"sha256:{content_sha256}" + (" +x" if mode & 0o111 else "")


@dataclass(frozen=True)
class ContextStats:
    """What was sent: regular files (hard links included), tar stream length, and the source
    manifest of the files sent (the stream itself is not hashed: its bytes depend on mtimes,
    the source does not, and one hash per byte is what the stream can afford)."""

    files: int
    bytes: int
    source: SourceManifest


class _Aborted(Exception):
    """The consumer gave up (its ``write`` failed or it was cancelled): stop writing the tar."""


class _QueueSink:
    """The file object tarfile writes to, on the worker thread.

    Cuts the stream into ``chunk_size`` pieces and puts each on the event loop's queue, blocking
    while the queue is full (back-pressure). Counts what it hands over.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[bytes | None],
        chunk_size: int,
        abort: threading.Event,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._chunk_size = chunk_size
        self._abort = abort
        self._buf = bytearray()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._buf += data
        while len(self._buf) >= self._chunk_size:
            chunk = bytes(self._buf[: self._chunk_size])
            del self._buf[: self._chunk_size]
            self._send(chunk)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: chunks leave as soon as they are full; :meth:`finish` sends the rest."""

    def tell(self) -> int:
        return self.size + len(self._buf)

    def read(self, size: int = -1, /) -> bytes:
        raise io.UnsupportedOperation("write-only stream")

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("unseekable stream")

    def close(self) -> None:
        """tarfile never closes a file object it was given; the stream ends in :meth:`finish`."""

    def finish(self) -> None:
        if self._buf:
            chunk = bytes(self._buf)
            self._buf.clear()
            self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._put(chunk)

    def _put(self, item: bytes | None) -> None:
        if self._abort.is_set():
            raise _Aborted
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while True:
            try:
                future.result(timeout=_PUT_POLL_SECONDS)
                return
            except TimeoutError:
                if self._abort.is_set():
                    future.cancel()
                    raise _Aborted from None

    def close_stream(self) -> None:
        """Tell the consumer the stream has ended (normally or not)."""
        self._put(None)


def _resolve_dockerfile(context: Path, dockerfile: str) -> tuple[Path, list[str]]:
    """The absolute context and the context-relative paths that must always be sent.

    ``dockerfile`` is relative to the context (or absolute). It must lie inside the context both
    lexically (after ``..`` is cleaned) and once symlinks are resolved, and be a file.
    """
    root = Path(os.path.abspath(context))
    if not root.is_dir():
        raise ValueError(f"build context {str(context)!r} is not a directory")
    lexical = Path(os.path.normpath(root / dockerfile))
    fix = "move the Dockerfile into the context directory, or use a context that contains it"
    rel = os.path.relpath(lexical, root)
    if rel == ".." or rel.startswith("../"):
        raise ValueError(
            f"Dockerfile {dockerfile!r} ({lexical}) is outside the build context {root}: {fix}"
        )
    real_root = root.resolve()
    real = lexical.resolve()
    try:
        real_rel = real.relative_to(real_root).as_posix()
    except ValueError:
        raise ValueError(
            f"Dockerfile {dockerfile!r} resolves through a symlink to {real}, outside the build"
            f" context {real_root}: {fix}"
        ) from None
    if rel == "." or not real.is_file():
        raise ValueError(
            f"Dockerfile {dockerfile!r} not found in the build context {root}:"
            " give its path relative to the context"
        )
    include = [Path(rel).as_posix()]
    if real_rel != include[0]:
        include.append(real_rel)  # a symlinked Dockerfile: send the target too
    include.append(IGNORE_FILE)
    return root, include


def _base_info(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _HashingReader:
    """The file object tarfile copies a member from: hashes each block as tarfile reads it, so
    the source manifest costs no second read of the file."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        return data


def _write_tar(
    root: Path,
    ignore: DockerIgnore,
    include: list[str],
    sink: _QueueSink,
    manifest: dict[str, str],
) -> int:
    """Write the whole tar to ``sink`` and each path's entry to ``manifest``; return the number
    of files. Runs on a worker thread."""
    files = 0
    seen: dict[tuple[int, int], str] = {}  # (dev, inode) of multiply linked files sent
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in ignore.walk(root, include):
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                info = _base_info(rel, st)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info = _base_info(rel, st)
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
                manifest[rel] = f"symlink:{info.linkname}"
            elif stat.S_ISREG(st.st_mode):
                files += _add_file(tar, rel, path, seen, manifest)
            # sockets, FIFOs, devices: not part of a build context
    sink.finish()  # after tar.close() wrote the end-of-archive blocks
    return files


def _add_file(
    tar: tarfile.TarFile,
    rel: str,
    path: Path,
    seen: dict[tuple[int, int], str],
    manifest: dict[str, str],
) -> int:
    # O_NOFOLLOW | O_NONBLOCK: if the entry was swapped for a symlink or FIFO since the walk
    # saw it, fail or skip rather than follow it or hang.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags)
    with open(fd, "rb", closefd=True) as fileobj:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        info = _base_info(rel, st)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen:
            info.type = tarfile.LNKTYPE
            info.linkname = seen[key]
            tar.addfile(info)
            manifest[rel] = manifest[seen[key]]  # the same bytes as the file it links to
            return 1
        if st.st_nlink > 1:
            seen[key] = rel
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        reader = _HashingReader(fileobj)
        tar.addfile(info, reader)
        manifest[rel] = source_entry(reader.sha256.hexdigest(), st.st_mode)
        return 1


async def stream_context(
    context: Path,
    dockerfile: str,
    write: Callable[[bytes], Awaitable[None]],
    *,
    chunk_size: int = 256 * 1024,
) -> ContextStats:
    """Send ``context`` as a tar stream through ``write``, chunk by chunk, and describe it.

    ``dockerfile`` (relative to the context) is sent even if ``.dockerignore`` excludes it, as
    is ``.dockerignore`` itself. Raises :class:`ValueError` before anything is written when the
    Dockerfile is missing or outside the context; errors while reading the context, and errors
    raised by ``write``, propagate (the tar writer stops in either case).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    root, include = _resolve_dockerfile(context, dockerfile)
    ignore = DockerIgnore.load(root)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_DEPTH)
    abort = threading.Event()
    sink = _QueueSink(loop, queue, chunk_size, abort)

    def produce() -> ContextStats:
        manifest: dict[str, str] = {}
        try:
            files = _write_tar(root, ignore, include, sink, manifest)
        finally:
            if not abort.is_set():
                sink.close_stream()
        return ContextStats(
            files=files,
            bytes=sink.size,
            source=SourceManifest.of(manifest),
        )

    producer = asyncio.ensure_future(asyncio.to_thread(produce))
    done = False
    try:
        while (chunk := await queue.get()) is not None:
            await write(chunk)
        stats = await asyncio.shield(producer)  # cancelling us must not orphan the thread
        done = True
        return stats
    finally:
        if not done:
            # write() failed, the tar writer failed, or we were cancelled: stop the thread and
            # wait for it, unblocking any put it is stuck in.
            abort.set()
            while not producer.done():
                while not queue.empty():
                    queue.get_nowait()
                await asyncio.wait({producer}, timeout=0.05)
            if not producer.cancelled():
                producer.exception()  # mark retrieved; _Aborted here is expected
