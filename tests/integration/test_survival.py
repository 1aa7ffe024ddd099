"""Builds that survive: a crashed matui, a blackholed network path, a registry that goes away.

All on the rig, with a private sshd (and where it must go away, a private registry or docker
engine) per test, so the shared rig is never disturbed (see tests/helpers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from matui.engine import publish
from matui.engine.build import start_build
from matui.engine.build.run import JobStatus, LinesEvent, StateEvent
from matui.engine.config import load_config
from matui.engine.publish import push_index
from matui.engine.records import JobState, list_runs
from matui.engine.registry import RegistryClient
from matui.engine.ssh import SshPool
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.dockerd import PrivateDockerd
from tests.helpers.projects import make_project, project
from tests.helpers.registry import PrivateRegistry
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd

pytestmark = pytest.mark.rig


def test_killed_matui_is_reattached_by_the_next_one(rig: Rig, sshd: Sshd, tmp_path: Path) -> None:
    """matui dies mid-build (kill -9: no chance to cancel); the build goes on; `matui attach`
    picks it up at the exact byte and records the outcome."""
    config = project(tmp_path, rig, sshd)
    proc = spawn_matui("build", "--config", config, state=tmp_path / "state")
    seen = read_until(proc, "tick 2")
    proc.kill()
    proc.wait(timeout=30)
    assert any("tick 2" in line for line in seen), "".join(seen)
    (record,) = list_runs(tmp_path / "state" / "matui")
    assert record.state == "running"  # nobody recorded an end

    attach = run_matui(
        "attach",
        "--config",
        config,
        "--json",
        state=tmp_path / "state",
        env={"PYTHONUNBUFFERED": "1"},
        timeout=180,
    )
    assert attach.returncode == 0, attach.stderr[-2000:]
    assert "attached to run" in attach.stderr
    (job,) = json.loads(attach.stdout)["jobs"]
    assert job["state"] == "succeeded" and job["digest"]
    (record,) = list_runs(tmp_path / "state" / "matui")
    host_log = (rig.host_job_dir(record.id) / "build.log").read_bytes()
    assert record.log_path("amd64").read_bytes() == host_log
    ticks = [
        ln for ln in host_log.decode().splitlines() if ln.split(" ", 2)[-1].startswith("tick ")
    ]
    assert len(ticks) == 12
    assert record.state == "succeeded"


class Relay:
    """A TCP relay that can stop forwarding without closing anything: a blackholed path."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = threading.Event()
        self.flowing.set()
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.listening = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.server = await asyncio.start_server(self._client, sock=self.sock)
        self.listening.set()
        async with self.server:
            with contextlib.suppress(asyncio.CancelledError):
                await self.server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    while not self.flowing.is_set():
                        await asyncio.sleep(0.05)  # hold everything: no RST, no FIN
                    data = await src.read(65536)
                    if not data:
                        break
                    while not self.flowing.is_set():
                        await asyncio.sleep(0.05)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)


@pytest.fixture
def relay(sshd: Sshd) -> Iterator[Relay]:
    server = Relay(sshd.port)
    assert server.listening.wait(timeout=10), "the relay did not start listening"
    yield server
    server.flowing.set()
    server.stop()


def test_blackholed_path_is_detected_and_recovered(
    rig: Rig, sshd: Sshd, relay: Relay, tmp_path: Path
) -> None:
    config_path = project(tmp_path, rig, sshd)
    text = config_path.read_text().replace(f"port = {sshd.port}", f"port = {relay.port}")
    config_path.write_text(text)
    key = sshd.known_hosts.read_text().split()[1:3]
    sshd.known_hosts.write_text(f"[127.0.0.1]:{relay.port} {key[0]} {key[1]}\n")
    config = load_config(config_path)
    timeline: dict[str, float] = {}

    async def run() -> tuple[JobState, list[str]]:
        lines: list[str] = []
        async with SshPool(
            config.hosts,
            keepalive_interval=1,
            keepalive_count_max=2,
            connect_timeout=2,
            login_timeout=3,
        ) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            build = prepared.run
            build.reconnect_delay = 0.5
            build.reconnect_cap = 2
            build.reconnect_attempts = 12

            def heal() -> None:
                timeline["healed"] = time.monotonic()
                relay.flowing.set()

            async for event in build.events():
                if isinstance(event, LinesEvent):
                    lines.extend(event.lines)
                    if "cut" not in timeline and any("tick 3" in ln for ln in event.lines):
                        relay.flowing.clear()
                        timeline["cut"] = time.monotonic()
                elif isinstance(event, StateEvent) and "disconnected" in event.detail:
                    timeline["detected"] = time.monotonic()
                    asyncio.get_running_loop().call_later(4, heal)
            status = (await build.wait())["amd64"]
            return status.state, lines

    state, lines = asyncio.run(run())
    assert state is JobState.SUCCEEDED
    detected = timeline["detected"] - timeline["cut"]
    # keepalive 1 s x 2 probes: the dead path shows within the keepalive window (plus slack).
    assert detected < 6, f"took {detected:.1f}s to notice the blackhole"
    ticks = [ln.rsplit(" ", 1)[-1] for ln in lines if ln.split(" ", 2)[-1].startswith("tick ")]
    assert ticks == [str(i) for i in range(1, 13)]  # nothing lost, nothing twice
    (record,) = list_runs(tmp_path / "state")
    run_id = record.id
    assert (
        record.log_path("amd64").read_bytes()
        == (rig.host_job_dir(run_id) / "build.log").read_bytes()
    )


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[PrivateRegistry]:
    """A registry of this test's own: it is stopped mid-push, the rig's never is."""
    registry = PrivateRegistry(tmp_path / "registry")
    registry.start()
    yield registry
    registry.stop()


def test_registry_down_during_index_push_leaves_the_tag_alone(
    rig: Rig,
    sshd: Sshd,
    private_registry: PrivateRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_path = project(tmp_path, rig, sshd, quick=True, registry=private_registry.address)
    config = load_config(config_path)
    repo = config.images[0].repository()
    registry = RegistryClient()

    async def build() -> object:
        async with SshPool(config.hosts) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            await prepared.run.wait()
            assert prepared.run.succeeded
            return prepared.run.record

    record = asyncio.run(build())
    real_create = publish.create_index

    async def registry_dies_first(*args: object, **kwargs: object) -> str:
        private_registry.stop()  # returns once the process has exited
        assert not private_registry.answers()
        return await real_create(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(publish, "create_index", registry_dies_first)
    # The index is made here (this machine has docker + buildx), and buildx cannot reach it.
    with pytest.raises(
        RuntimeError,
        match=r"imagetools create here failed \(exit 1\): .*"
        rf"dial tcp {private_registry.address}: connect: connection refused",
    ):
        asyncio.run(push_index(record, registry, config=config))  # type: ignore[arg-type]
    monkeypatch.setattr(publish, "create_index", real_create)
    private_registry.start()  # the same storage: back up with what it held
    # The release tag was never touched.
    assert asyncio.run(registry.get_manifest(repo, "1.0")) is None
    # Back up: pushing again works, and twice gives the very same index digest.
    first = asyncio.run(push_index(record, registry, config=config))  # type: ignore[arg-type]
    second = asyncio.run(push_index(record, registry, config=config))  # type: ignore[arg-type]
    assert first[0].verified and second[0].verified
    assert first[0].digest == second[0].digest


@pytest.fixture
def private_engine(rig: Rig, tmp_path: Path) -> Iterator[PrivateDockerd]:
    """A docker engine of this test's own: it is restarted under a build, the rig's never is.
    It holds the arm64 base image already (from the rig's registry), as the rig's engines do."""
    engine = PrivateDockerd(tmp_path / "engine")
    try:
        engine.start()
        engine.pull(rig.base_image, "linux/arm64")
        yield engine
    finally:
        engine.close()


@pytest.fixture
def engine_sshd(rig: Rig, private_engine: PrivateDockerd, tmp_path: Path) -> Iterator[Sshd]:
    """A builder host like the rig's emu host, its sessions on the private engine."""
    server = private_sshd(rig, tmp_path / "engine-sshd", docker_host=private_engine.host)
    yield server
    server.stop()


def test_engine_restart_fails_that_arch_clearly_and_spares_the_other(
    rig: Rig, private_engine: PrivateDockerd, engine_sshd: Sshd, tmp_path: Path
) -> None:
    """arm64 builds under QEMU on a private host whose engine is restarted under it; amd64
    builds on the rig's amd64 host meanwhile."""

    slow = 'ARG BASE\nFROM ${BASE}\nRUN for i in $(seq 1 16); do echo "tick $i"; sleep 0.5; done\n'
    config_path, _ = make_project(tmp_path, rig, slow)
    text = config_path.read_text()
    rig_emu = f"port = {rig.port_emu}\nallow_emulation = true\n"
    assert rig_emu in text, text
    private_emu = (
        f'port = {engine_sshd.port}\nknown_hosts = "{engine_sshd.known_hosts}"\n'
        "allow_emulation = true\n"
    )
    config_path.write_text(text.replace(rig_emu, private_emu))
    config = load_config(config_path)
    (emu,) = [h for h in config.hosts if h.port == engine_sshd.port]

    async def run() -> dict[str, JobStatus]:
        restarted = False
        async with SshPool(config.hosts) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            assert prepared.run.plan.job("arm64").host == emu.name
            async for event in prepared.run.events():
                if (
                    not restarted
                    and isinstance(event, LinesEvent)
                    and event.job == "arm64"
                    and any("tick 3" in line for line in event.lines)
                ):
                    restarted = True
                    # SIGTERM, wait for the exit, start again on the same data root.
                    await asyncio.to_thread(private_engine.stop)
                    await asyncio.to_thread(private_engine.start)
            assert restarted, "the arm64 build never reached tick 3"
            return dict(await prepared.run.wait())

    status = asyncio.run(run())
    arm, amd = status["arm64"], status["amd64"]
    assert arm.state is JobState.FAILED, arm
    assert f"docker engine on {emu.name} went away" in (arm.error or ""), arm.error
    assert amd.state is JobState.SUCCEEDED and amd.digest, amd


def test_hosts_behind_a_dropped_bastion_reconnect_through_it(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    """The private sshd is the bastion; the build host is the rig's amd64 host behind it."""
    config_path = project(tmp_path, rig, sshd)
    known = tmp_path / "known_hosts_all"
    known.write_text(sshd.known_hosts.read_text() + rig.known_hosts.read_text())
    text = config_path.read_text()
    text = text.replace(f"port = {sshd.port}\n", f"port = {rig.port_amd64}\n", 1)
    text = text.replace(
        f'known_hosts = "{sshd.known_hosts}"',
        f'known_hosts = "{known}"\njump = "{rig.user}@127.0.0.1:{sshd.port}"',
    )
    config_path.write_text(text)
    config = load_config(config_path)

    async def run() -> tuple[JobState, list[str], list[str]]:
        lines: list[str] = []
        details: list[str] = []
        async with SshPool(config.hosts, keepalive_interval=1, keepalive_count_max=2) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            prepared.run.reconnect_delay = 0.3
            dropped = False
            async for event in prepared.run.events():
                if isinstance(event, LinesEvent):
                    lines.extend(event.lines)
                    if not dropped and any("tick 3" in line for line in event.lines):
                        dropped = True
                        sshd.drop_connections()  # the bastion's sessions die, sshd stays up
                elif isinstance(event, StateEvent):
                    details.append(event.detail)
            return (await prepared.run.wait())["amd64"].state, lines, details

    state, lines, details = asyncio.run(run())
    assert state is JobState.SUCCEEDED
    assert any("disconnected" in d for d in details)
    assert any("reattached" in d for d in details)
    ticks = [ln.rsplit(" ", 1)[-1] for ln in lines if ln.split(" ", 2)[-1].startswith("tick ")]
    assert ticks == [str(i) for i in range(1, 13)]
