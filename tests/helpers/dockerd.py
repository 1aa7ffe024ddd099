"""A private docker engine for a test that must stop or restart one: a ``dockerd`` started like
the rig's second engine (``start_dockerd2`` in ``rig/rig``: own data and exec roots, BuildKit's
per-step log caps lifted, loopback registries insecure, no iptables rules) with a bridge of its
own. Other test runs and other people's builds use the rig's engines at the same time, so a
test never stops those.

BuildKit's ``RUN`` steps need the engine's default ``bridge`` network: with ``--bridge=none``
every ``RUN`` fails with "network bridge not found" (seen on Docker 20.10). Each engine so gets
its own Linux bridge, ``matuitN`` on ``172.30.N.1/24`` for the first N from 93 whose /24 no
address or route here overlaps and whose name nobody holds yet; ``ip link add`` refuses a
name that exists, which is what keeps two concurrent test runs off the same bridge."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

BRIDGE_PREFIX = "matuit"
FIRST_SUBNET = 93  # the rig's second engine has 172.30.92.0/24
_LOG_CAPS = {  # as the rig's engines: BuildKit clips step logs at 2 MiB / 200 KiB/s otherwise
    "BUILDKIT_STEP_LOG_MAX_SIZE": "1073741824",
    "BUILDKIT_STEP_LOG_MAX_SPEED": "1073741824",
}


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network an interface address or a route here covers (default route aside)."""
    found: list[ipaddress.IPv4Network] = []
    addrs = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
    for line in addrs.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            iface = ipaddress.IPv4Interface(fields[fields.index("inet") + 1])
            found.append(iface.network)
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True)
    for line in routes.stdout.splitlines():
        dest = line.split(maxsplit=1)[0] if line.strip() else "default"
        if dest != "default":
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Network(dest, strict=False))
    return found


def claim_bridge() -> tuple[str, ipaddress.IPv4Interface]:
    """Create and bring up a bridge of this process's own; returns (name, its address)."""
    in_use = _networks_in_use()
    for n in range(FIRST_SUBNET, 255):
        address = ipaddress.IPv4Interface(f"172.30.{n}.1/24")
        if any(address.network.overlaps(net) for net in in_use):
            continue
        name = f"{BRIDGE_PREFIX}{n}"
        made = subprocess.run(
            ["ip", "link", "add", name, "type", "bridge"], capture_output=True, text=True
        )
        if made.returncode != 0:
            continue  # another run holds this one (or left it behind): take the next
        try:
            subprocess.run(
                ["ip", "addr", "add", str(address), "dev", name], capture_output=True, check=True
            )
            subprocess.run(["ip", "link", "set", name, "up"], capture_output=True, check=True)
        except subprocess.CalledProcessError:
            release_bridge(name)
            raise
        return name, address
    raise RuntimeError(
        f"no free 172.30.N.0/24 (N >= {FIRST_SUBNET}) for a private docker bridge; "
        f"`ip link show type bridge` lists leftover {BRIDGE_PREFIX}N bridges to delete"
    )


def release_bridge(name: str) -> None:
    subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


class PrivateDockerd:
    """One ``dockerd`` whose files live in a short directory of its own under /tmp (its unix
    socket, and containerd's under its exec root, must stay under 108 bytes), its log in
    ``log_dir``. :meth:`stop` then :meth:`start` restarts it on the same data root;
    :meth:`close` stops it for good and removes its bridge and files."""

    def __init__(self, log_dir: Path) -> None:
        # Not tempfile.gettempdir(): a long $TMPDIR would push the sockets past 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="matui-dockerd-", dir="/tmp"))
        self.dir.chmod(0o755)  # the builder user reaches the socket (group docker) through it
        self.data_root = self.dir / "root"
        self.exec_root = self.dir / "exec"
        self.pidfile = self.dir / "dockerd.pid"
        self.socket = self.dir / "docker.sock"
        self.host = f"unix://{self.socket}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / "dockerd.log"
        self.bridge: str | None = None
        self.address: ipaddress.IPv4Interface | None = None
        self.ready_after: float | None = None
        """Seconds from spawning ``dockerd`` to its first good ``docker info``, last start."""
        self._process: subprocess.Popen[bytes] | None = None
        containerd_socket = self.exec_root / "containerd" / "containerd.sock"
        assert len(bytes(containerd_socket)) < 108, containerd_socket

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine only."""
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        return subprocess.run(
            ["docker", "--host", self.host, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def answers(self) -> bool:
        try:
            return self.docker("info", timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self, timeout: float = 60) -> None:
        """Start it (the bridge is claimed on the first start) and return once ``docker info``
        answers."""
        assert self._process is None, "already running"
        if self.bridge is None:
            self.bridge, self.address = claim_bridge()
        began = time.monotonic()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    "dockerd",
                    f"--data-root={self.data_root}",
                    f"--exec-root={self.exec_root}",
                    f"--pidfile={self.pidfile}",
                    f"--host={self.host}",
                    "--group=docker",
                    f"--bridge={self.bridge}",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--insecure-registry=127.0.0.0/8",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **_LOG_CAPS},
            )
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() - began > timeout:
                self.stop()
                raise RuntimeError(
                    f"private dockerd ({self.host}) did not come up in {timeout:.0f}s:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.05)
        self.ready_after = time.monotonic() - began

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM it and return once it has exited (SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            # A killed dockerd leaves the containerd it started behind.
            pidfile = self.exec_root / "containerd" / "containerd.pid"
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)

    def pull(self, image: str, platform: str) -> None:
        pulled = self.docker("pull", "--quiet", f"--platform={platform}", image, timeout=120)
        if pulled.returncode != 0:
            raise RuntimeError(
                f"private dockerd could not pull {image} ({platform}): {pulled.stderr.strip()}"
            )

    def close(self) -> None:
        """Stop it, end the build steps it left running, delete its bridge and its files."""
        self.stop()
        self._end_orphaned_steps()
        if self.bridge is not None:
            release_bridge(self.bridge)
            self.bridge = None
        # A dockerd that had to be killed can leave overlay mounts under its data root.
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        inside = [m.split()[1] for m in mounts if m.split()[1].startswith(f"{self.dir}/")]
        for mount in sorted(inside, reverse=True):
            subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _end_orphaned_steps(self) -> None:
        """A ``RUN`` step's processes outlive an engine stopped under them (seen on Docker
        20.10: the step's shell stays, stuck, holding its network namespace and a veth on the
        bridge). BuildKit names each step's cgroup ``.../buildkit/<id>`` after its directory
        under ``<data-root>/buildkit/executor``; those ids are this engine's alone."""
        executor = self.data_root / "buildkit" / "executor"
        ids = {p.name for p in executor.iterdir() if p.is_dir()} if executor.is_dir() else set()
        if not ids:
            return
        pids: list[int] = []
        cgroups: set[str] = set()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                for line in (proc / "cgroup").read_text().splitlines():
                    path = line.split(":", 2)[-1]
                    if path.rpartition("/buildkit/")[2] in ids and "/buildkit/" in path:
                        pids.append(int(proc.name))
                        cgroups.add(path)
                        break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Their cgroups stay behind empty unless removed (every v1 hierarchy, and v2).
        for path in cgroups:
            for directory in Path("/sys/fs/cgroup").glob(f"*{path}"):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                Path(f"/sys/fs/cgroup{path}").rmdir()


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed step stays a zombie where PID 1 does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
