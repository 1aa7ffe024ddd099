"""A release at scale: 8 images x 4 arches on 12 builder hosts.

Side by side in one run, alternating which side goes first each round:

* the whole release through matui (``start_release`` in a process of its own, as ``matui build``
  runs it: probe every host, plan the images jointly, pre-flight, upload each context, build,
  push; process start to exit) against the same 32 builds started at once by hand with the
  OpenSSH client (context tarred over ssh, the same ``docker buildx build`` on the host matui's
  plan chose); fresh Dockerfiles each round so both sides really build (target <= 1.10x);
* matui's peak RSS (VmHWM of that process) against its RSS once its modules are imported and
  the config is loaded;
* planning: ``plan_release`` for the 8 images on the 12 probed hosts, against probing them (the
  step before it); and the same planner on a synthetic 100 hosts x 50 images (no rig) against
  the synthetic 12 x 8;
* the dashboard's first paint on the release's config (headless, 120x40, no probe on start)
  against a bare Textual app;
* memory per log line in a job's ``LogStore`` (the dashboard's copy of a log) against the
  line's own bytes.

The 12 hosts are private sshd instances on loopback, each with a HOME of its own (so each is a
machine of its own to the planner: its probe's machine key is the machine id and HOME), their
sessions split between the rig's two docker engines. The rig has no arm64, ppc64le or s390x
machine: the hosts allowed to emulate build those under QEMU, as configured (``allow_emulation
= true``); the others build amd64 only. Builds are tiny (a FROM, a COPY, one short RUN), so the
figures are matui's, not a compiler's. The base image for four arches is built here once from
Debian's busybox-static packages (``dpkg --add-architecture ppc64el s390x`` first; the rig's
base image has amd64 and arm64 only).

    . /tmp/matui-rig/env && .venv/bin/python -m benchmarks.release_scale [--rounds 3]
    .venv/bin/python -m benchmarks.release_scale --small     # 2 images x 2 arches on 3 hosts

For docs/scale.md, without figures: ``--probe-scaling 3,12,24,48`` (probe time and matui's CPU
as the hosts grow), ``--follow-cost 32`` (a host's CPU per job followed, polling as shipped and
every 0.5 s); and the experiment ``--follow-poll 0.5`` (the whole run with matui's release
process patched so the hosts poll a job's end every 0.5 s instead of 0.05 s: not matui as
shipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import pwd
import resource
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Figure,
    emit,
    log_line,
    median,
    parser,
    rig_env,
    ssh_argv,
)

RESULT_PREFIX = "@@release "
ARCHES = ("amd64", "arm64", "ppc64le", "s390x")
DEB_ARCH = {"amd64": "amd64", "arm64": "arm64", "ppc64le": "ppc64el", "s390x": "s390x"}
APPLETS = ("sh", "echo", "seq", "cat", "true")
SIZE = (120, 40)

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY payload.txt /payload.txt
RUN echo %s; for i in $(seq 1 20); do echo "work $i"; done
"""


@dataclass(frozen=True)
class Shape:
    images: int
    arches: tuple[str, ...]
    hosts: int

    @property
    def jobs(self) -> int:
        return self.images * len(self.arches)

    def __str__(self) -> str:
        return f"{self.images} images x {len(self.arches)} arches on {self.hosts} hosts"


# -- the base image --------------------------------------------------------------------------


def docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_HOST": env["DOCKER_HOST"]},
    )


def base_image(env: dict[str, str], arches: tuple[str, ...], work: Path) -> str:
    """The rig's base image when it has every arch asked for; else a busybox of those arches
    made here once (pushed to the rig's registry, reused by later runs)."""
    if set(arches) <= {"amd64", "arm64"}:
        return env["MATUI_RIG_BASE_IMAGE"]
    ref = f"{env['MATUI_RIG_REGISTRY']}/bench/busybox:1.35-" + "-".join(arches)
    have = docker(env, "buildx", "imagetools", "inspect", "--raw", ref)
    if have.returncode == 0 and all(f'"{a}"' in have.stdout for a in arches):
        return ref
    print(f"building the base image {ref} (once)", file=sys.stderr, flush=True)
    sources = []
    for arch in arches:
        rig_half = f"{env['MATUI_RIG_BASE_IMAGE']}-{arch}"
        if (
            arch in ("amd64", "arm64")
            and docker(env, "buildx", "imagetools", "inspect", rig_half).returncode == 0
        ):
            sources.append(rig_half)
            continue
        sources.append(busybox_for(env, arch, ref, work / f"base-{arch}"))
    made = docker(env, "buildx", "imagetools", "create", "--tag", ref, *sources)
    if made.returncode != 0:
        raise SystemExit(f"cannot make {ref}: {made.stderr.strip()}")
    return ref


def busybox_for(env: dict[str, str], arch: str, ref: str, work: Path) -> str:
    deb_arch = DEB_ARCH[arch]
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(
        ["apt-get", "download", "-qq", f"busybox-static:{deb_arch}"],
        cwd=debs,
        capture_output=True,
        text=True,
    )
    found = list(debs.glob(f"busybox-static_*_{deb_arch}.deb"))
    if got.returncode != 0 or not found:
        raise SystemExit(
            f"cannot download busybox-static:{deb_arch} for the {arch} base image "
            f"({got.stderr.strip()[-300:]}); as root: dpkg --add-architecture {deb_arch} && "
            "apt-get update; or run with --arches 2 (amd64 and arm64, the rig's base image)"
        )
    subprocess.run(["dpkg-deb", "-x", str(found[0]), str(work / "x")], check=True)
    rootfs = work / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").mkdir(exist_ok=True)
    (rootfs / "bin" / "busybox").write_bytes((work / "x" / "bin" / "busybox").read_bytes())
    (rootfs / "bin" / "busybox").chmod(0o755)
    for applet in APPLETS:
        link = rootfs / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    (work / "Dockerfile").write_text(
        'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD ["/bin/sh"]\n'
    )
    half = f"{ref}-{arch}"
    built = docker(
        env,
        *("buildx", "build", "--progress=plain", "--provenance=false"),
        *(f"--platform=linux/{arch}", "--push", f"--tag={half}", str(work)),
    )
    if built.returncode != 0:
        raise SystemExit(f"base image build for {arch} failed:\n{built.stderr[-2000:]}")
    return half


# -- the hosts ---------------------------------------------------------------------------------


@dataclass
class Fleet:
    """``count`` private sshd instances, each a host with a HOME of its own."""

    root: Path
    servers: list[Any]
    ports: list[int]
    known_hosts: Path
    homes: list[Path]
    cgroup: Path | None = None
    """A cgroup-v1 cpuacct group holding the sshd listeners, so every login session, shell,
    wrapper and docker/buildx client under them (not dockerd or BuildKit) is counted."""

    def cpu_seconds(self) -> float | None:
        """CPU the hosts' logins used so far; None when the machine has no cpuacct cgroup."""
        if self.cgroup is None:
            return None
        return int((self.cgroup / "cpuacct.usage").read_text()) / 1e9

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.cgroup is not None:
            for _ in range(100):  # the last sessions' processes exit a moment after sshd
                try:
                    self.cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def host_cgroup(name: str) -> Path | None:
    try:
        group = CPUACCT / name
        group.mkdir()
    except OSError:
        return None
    return group


def start_fleet(env: dict[str, str], count: int, root: Path) -> Fleet:
    from tests.helpers.rig import read_env, rig_from_env
    from tests.helpers.sshd import private_sshd

    rig = rig_from_env(read_env(Path(env["MATUI_RIG_DIR"]) / "env"))
    user = pwd.getpwnam(rig.user)
    engines = [rig.docker_host, env.get("MATUI_RIG_DOCKER2_HOST") or rig.docker_host]
    fleet = Fleet(root, [], [], root / "known_hosts", [])
    fleet.cgroup = host_cgroup(f"matui-release-scale-{os.getpid()}")
    root.mkdir(parents=True, exist_ok=True)
    for path in (root.parent, root):  # the hosts' logins walk through to their homes
        path.chmod(0o755)
    try:
        for i in range(count):
            home = root / "homes" / f"b{i + 1:02d}"
            home.mkdir(parents=True)
            os.chown(home, user.pw_uid, user.pw_gid)
            os.chown(home.parent, 0, 0)
            # sshd's SetEnv comes after the session's own HOME: each host is a login of its own.
            server = private_sshd(
                rig,
                root / "sshd" / f"b{i + 1:02d}",
                options=[f"SetEnv DOCKER_HOST={engines[i % 2]} HOME={home}"],
            )
            fleet.servers.append(server)
            for _ in range(100):  # sshd listens a moment before it writes its pid file
                if server.pidfile.exists() and server.pidfile.read_text().strip():
                    break
                time.sleep(0.05)
            if fleet.cgroup is not None:
                (fleet.cgroup / "cgroup.procs").write_text(str(server.listener))
            fleet.ports.append(server.port)
            fleet.homes.append(home)
        fleet.known_hosts.write_text(
            "".join(server.known_hosts.read_text() for server in fleet.servers)
        )
    except BaseException:
        fleet.stop()
        raise
    return fleet


# -- the project -------------------------------------------------------------------------------


def image_name(env: dict[str, str], i: int) -> str:
    return f"{env['MATUI_RIG_REGISTRY']}/bench/scale-{i + 1}"


def write_project(
    root: Path, env: dict[str, str], shape: Shape, fleet: Fleet | None, base: str
) -> Path:
    """The release's config: ``shape.hosts`` amd64 hosts, three in four of them allowed to
    emulate the other arches; one image per context."""
    native = max(1, shape.hosts // 4) if len(shape.arches) > 1 else shape.hosts
    lines = [
        "[defaults]",
        f'user = "{env["MATUI_RIG_USER"]}"',
        f'identity = "{env["MATUI_RIG_KEY"]}"',
        f'known_hosts = "{fleet.known_hosts if fleet else env["MATUI_RIG_KNOWN_HOSTS"]}"',
        "",
    ]
    for i in range(shape.hosts):
        port = fleet.ports[i] if fleet else 22
        lines += [
            "[[hosts]]",
            f'name = "b{i + 1:02d}"',
            'arch = "amd64"',
            'address = "127.0.0.1"',
            f"port = {port}",
            f"allow_emulation = {'false' if i < native else 'true'}",
            "",
        ]
    platforms = ", ".join(f'"linux/{a}"' for a in shape.arches)
    for i in range(shape.images):
        ctx = root / f"ctx-{i + 1}"
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / "payload.txt").write_text(f"image {i + 1}\n" + "x" * 4000)
        (ctx / "Dockerfile").write_text(DOCKERFILE % "first")
        lines += [
            "[[images]]",
            f'name = "{image_name(env, i)}"',
            'tags = ["1.0"]',
            f'context = "ctx-{i + 1}"',
            f"platforms = [{platforms}]",
            f'build_args = {{ BASE = "{base}" }}',
            "",
        ]
    path = root / "matui.toml"
    path.write_text("\n".join(lines))
    return path


def fresh_dockerfiles(root: Path, images: int) -> None:
    for i in range(images):
        token = secrets.token_hex(8)
        (root / f"ctx-{i + 1}" / "Dockerfile").write_text(DOCKERFILE % f"{i + 1}-{token}")


# -- matui's side, in a process of its own -----------------------------------------------------


def vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


async def release_child(config_path: Path, state: Path) -> dict[str, Any]:
    """Run the whole release as ``matui build`` does (every event read), report it."""
    from matui.engine.build import start_release
    from matui.engine.config import load_config
    from matui.engine.ssh import SshPool

    poll = os.environ.get("MATUI_BENCH_FOLLOW_POLL")
    if poll:  # --follow-poll: size a change of the hosts' follow loop (not matui as shipped)
        patch_follow_poll(poll)
    config = load_config(config_path)
    gc.collect()
    rss_loaded = vm("VmRSS")
    started = time.perf_counter()
    lines = 0
    peaks = {"tasks": 0, "fds": 0, "sockets": 0, "threads": 0}
    sampler = asyncio.create_task(sample(peaks))
    async with SshPool(config.hosts) as pool:
        release = await start_release(config, pool, state_root=state)
        launched = time.perf_counter()

        async def follow(run: Any) -> int:
            n = 0
            async for event in run.events():
                n += len(getattr(event, "lines", ()) or ())
            await run.wait()
            return n

        lines = sum(await asyncio.gather(*(follow(run) for run in release.runs)))
        failed = [run.record.dir for run in release.runs if not run.succeeded]
    finished = time.perf_counter()
    sampler.cancel()
    jobs = [
        {"image": b.plan.image.name, "platform": str(j.platform), "host": j.host, "ref": j.ref}
        for b in release.builds
        for j in b.plan.jobs
    ]
    return {
        "start_s": launched - started,
        "build_s": finished - launched,
        "rss_loaded": rss_loaded,
        "rss_peak": vm("VmHWM"),
        "lines": lines,
        "failed": [str(f) for f in failed],
        "jobs": jobs,
        "peaks": peaks,
    }


async def sample(peaks: dict[str, int]) -> None:
    """Every 50 ms, the most asyncio tasks, file descriptors, sockets and threads seen."""
    while True:
        fds = os.listdir("/proc/self/fd")
        sockets = 0
        for fd in fds:
            with contextlib.suppress(OSError):  # closed meanwhile
                sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        now = {
            "tasks": len(asyncio.all_tasks()) - 1,  # not this one
            "fds": len(fds),
            "sockets": sockets,
            "threads": vm_count("Threads"),
        }
        for key, value in now.items():
            peaks[key] = max(peaks[key], value)
        await asyncio.sleep(0.05)


def vm_count(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def patch_follow_poll(seconds: str) -> None:
    """Make this process's runner follow jobs with the host polling every ``seconds`` instead
    of every 0.05 s (the follow script's own text, one word changed)."""
    from matui.engine import shell

    shipped = shell.follow_script

    def follow_script(run_id: str, job_key: str, offset: int, pid: int) -> Any:
        script = shipped(run_id, job_key, offset, pid)
        changed = script.script.replace("do sleep 0.05; done", f"do sleep {float(seconds)}; done")
        assert changed != script.script, "the follow script changed: update this patch"
        return type(script)(changed)

    shell.follow_script = follow_script


def through_matui(config: Path, state: Path) -> tuple[float, dict[str, Any]]:
    """Process start to exit, and what the process reported."""
    argv = [sys.executable, "-m", "benchmarks.release_scale", "--child-release", str(config)]
    cpu = children_cpu()
    started = time.perf_counter()
    out = subprocess.run([*argv, str(state)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu
    if out.returncode != 0:
        raise SystemExit(f"matui release failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.split(RESULT_PREFIX, 1)[1].splitlines()[0])
    if result["failed"]:
        raise SystemExit(f"matui release had failed runs: {result['failed']}")
    result["cpu_s"] = cpu
    return wall, result


def children_cpu() -> float:
    """User + system CPU of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- by hand -----------------------------------------------------------------------------------


def by_hand(
    root: Path, env: dict[str, str], fleet: Fleet, jobs: list[dict[str, Any]], base: str
) -> tuple[float, float]:
    """The same builds with the OpenSSH client, all started at once, each on the host matui's
    plan chose for it: tar the context over ssh, ``docker buildx build`` there, push."""
    from matui.engine.shell import buildx_argv

    hosts = {f"b{i + 1:02d}": port for i, port in enumerate(fleet.ports)}
    names = {image_name(env, i): i for i in range(len(jobs))}  # at least one job per image
    run_id = secrets.token_hex(4)
    ssh_env = {**env, "MATUI_RIG_KNOWN_HOSTS": str(fleet.known_hosts)}
    cpu = children_cpu()
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    tars: list[subprocess.Popen[bytes]] = []
    for job in jobs:
        i = names[job["image"]]
        arch = job["platform"].split("/", 1)[1].replace("/", "")
        workdir = f".bench/{run_id}/{i + 1}-{arch}"
        argv = buildx_argv(
            platform=job["platform"],
            ref=f"{job['image']}:hand-{arch}",
            dockerfile="Dockerfile",
            build_args=["BASE"],
            labels={},
            target=None,
        )
        remote = (
            f'cd "$HOME" && mkdir -p {workdir}/context && tar -x -f - -C {workdir}/context && '
            f"cd {workdir} && BASE={shlex.quote(base)} "
            + " ".join(shlex.quote(a) for a in argv)
            + " > build.log 2>&1"
        )
        ssh = ssh_argv(ssh_env, remote, port=str(hosts[job["host"]]))
        tar = subprocess.Popen(
            ["tar", "-c", "-C", str(root / f"ctx-{i + 1}"), "."], stdout=subprocess.PIPE
        )
        procs.append(subprocess.Popen(ssh, stdin=tar.stdout))
        assert tar.stdout is not None
        tar.stdout.close()
        tars.append(tar)
    codes = [p.wait() for p in procs]
    codes += [t.wait() for t in tars]
    wall = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a build by hand failed: exit codes {codes}")
    return wall, children_cpu() - cpu


# -- planning ----------------------------------------------------------------------------------


async def plan_child(config_path: Path, reps: int) -> dict[str, Any]:
    """Probe the hosts once (as a release does), then time the planner on those probes."""
    from matui.engine.config import load_config
    from matui.engine.flags.gather import check_hosts
    from matui.engine.plan import plan_release
    from matui.engine.ssh import SshPool

    config = load_config(config_path)
    registries = list(dict.fromkeys(i.repository().registry for i in config.images))
    async with SshPool(config.hosts) as pool:
        cpu = self_cpu()
        started = time.perf_counter()
        report = await check_hosts(pool, config.hosts, registries)
        probe_s = time.perf_counter() - started
        cpu = self_cpu() - cpu
    bad = [p.name for p in report.probes if not p.usable]
    if bad:
        raise SystemExit(f"hosts not usable: {bad}: {[p.error for p in report.probes]}")
    images = [(image, image.tags) for image in config.images]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        plans = plan_release(images, config.hosts, report.probes)
        times.append(time.perf_counter() - t0)
    used = sorted({job.host for plan in plans for job in plan.jobs})
    return {"probe_s": probe_s, "probe_cpu_s": cpu, "plan_s": median(times), "hosts_used": used}


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def synthetic(hosts: int, images: int, arches: tuple[str, ...]) -> tuple[Any, list[Any], Any]:
    """A config of ``hosts`` hosts (a quarter native-only, the rest allowed to emulate) and
    ``images`` images of ``arches``, with a healthy probe per host: what planning sees."""
    from matui.engine.arch import Platform
    from matui.engine.config import HostConfig, ImageConfig
    from matui.engine.probe import HostProbe

    native = max(1, hosts // 4)
    configs = tuple(
        HostConfig(
            f"h{i:03d}", "amd64", f"10.0.{i // 250}.{i % 250 + 1}", allow_emulation=i >= native
        )
        for i in range(hosts)
    )
    probes = [
        HostProbe(
            h.name,
            "amd64",
            True,
            native_arch="amd64",
            emulation=tuple(a for a in arches if a != "amd64"),
            free_bytes=100 << 30,
            cpus=8,
            load=(i % 7) / 10,
            jobs_running=i % 3,
            machine=f"m{i}",
        )
        for i, h in enumerate(configs)
    ]
    platforms = tuple(Platform.parse(f"linux/{a}") for a in arches)
    image_list = [
        (ImageConfig(f"registry.example/team/app-{i}", ("1.0",), Path("/ctx"), platforms), ("1.0",))
        for i in range(images)
    ]
    return configs, probes, image_list


def time_synthetic_plan(hosts: int, images: int, reps: int) -> float:
    from matui.engine.plan import plan_release

    configs, probes, image_list = synthetic(hosts, images, ARCHES)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        plan_release(image_list, configs, probes)
        times.append(time.perf_counter() - t0)
    return median(times)


# -- first paint -------------------------------------------------------------------------------


def paint_child(kind: str, config_path: Path | None) -> None:
    """In a fresh process: the dashboard on the release's config (or a bare Textual app), run
    headless; print which view was measured and when its first screen update ended. The
    release view (``matui.ui.release_view``) when this matui opens one for a config of several
    images, else the first image's dashboard."""
    from benchmarks.startup import bare_app, paint_app

    if kind == "bare":
        print("bare", paint_app(bare_app(), SIZE))
        return
    from matui.engine.config import ConfigError, load_config
    from matui.ui.app import MatuiApp

    assert config_path is not None
    config = load_config(config_path)
    state = Path(os.environ["XDG_STATE_HOME"])
    view = "release"
    screen: str | None = "ReleaseScreen"
    try:
        app: Any = MatuiApp(config, probe_on_start=False, resume_on_start=False, state_root=state)
    except ConfigError:  # a matui without the release view asks which image
        view, screen = "image", None
        app = MatuiApp(
            config,
            image=config.images[0].name,
            probe_on_start=False,
            resume_on_start=False,
            state_root=state,
        )
    if view == "release" and getattr(app, "release", None) is None:
        view, screen = "image", None
    print(view, paint_app(app, SIZE, screen))


def paint_time(kind: str, config: Path) -> tuple[str, float]:
    """Seconds from launching a process to the end of its first paint, and the view painted."""
    from benchmarks.startup import child_env

    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.release_scale", "--child-paint", kind, str(config)],
            capture_output=True,
            text=True,
            check=True,
            env=child_env(XDG_STATE_HOME=tmp),
        )
    view, painted = out.stdout.split()[-2:]
    return view, float(painted) - started


# -- memory per log line -----------------------------------------------------------------------


def log_bytes_per_line(count: int) -> float:
    """Bytes a LogStore holds per 80-character line (tracemalloc: Python's allocations). Each
    batch is made while tracing and then dropped, so the lines the store keeps count."""
    from matui.engine.logstore import LogStore

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = LogStore(memory_limit=None)
    for start in range(0, count, 2000):
        store.append([log_line(i) for i in range(start, min(count, start + 2000))])
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == count
    return held / count


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, help="images in the release (default 8; --small 2)")
    p.add_argument("--arches", type=int, choices=(1, 2, 3, 4), help="arches (default 4; --small 2)")
    p.add_argument("--hosts", type=int, help="builder hosts (default 12; --small 3)")
    p.add_argument("--rounds", type=int, help="release rounds per side (default 3; --small 1)")
    p.add_argument("--child-release", nargs=2, type=Path, help="(internal)")
    p.add_argument("--child-plan", nargs=2, help="(internal)")
    p.add_argument("--child-paint", nargs=2, help="(internal)")
    p.add_argument(
        "--probe-scaling",
        metavar="N,N,...",
        help="only print how probing grows with the hosts (e.g. 3,12,24,48), no figures",
    )
    p.add_argument(
        "--follow-poll",
        metavar="SECONDS",
        help="experiment: matui's hosts poll a followed job's end every SECONDS (shipped: 0.05)",
    )
    p.add_argument(
        "--follow-cost",
        metavar="JOBS",
        type=int,
        help="only print the CPU a host spends following JOBS running jobs, no figures",
    )
    args = p.parse_args()
    if args.follow_cost:
        follow_cost(args.follow_cost, 10.0)
        return
    if args.probe_scaling:
        counts = [int(n) for n in args.probe_scaling.split(",")]
        probe_scaling(rig_env(), counts, args.reps or 3)
        return
    if args.child_release:
        result = asyncio.run(release_child(*args.child_release))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return
    if args.child_plan:
        result = asyncio.run(plan_child(Path(args.child_plan[0]), int(args.child_plan[1])))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return
    if args.child_paint:
        paint_child(args.child_paint[0], Path(args.child_paint[1]))
        return

    if args.follow_poll:
        os.environ["MATUI_BENCH_FOLLOW_POLL"] = args.follow_poll  # the release children read it
        print(f"EXPERIMENT: hosts poll every {args.follow_poll} s", file=sys.stderr)
    small = args.small
    shape = Shape(
        args.images or (2 if small else 8),
        ARCHES[: args.arches or (2 if small else 4)],
        args.hosts or (3 if small else 12),
    )
    rounds = args.rounds or (1 if small else 3)
    env = rig_env()
    with tempfile.TemporaryDirectory(prefix="matui-release-scale-") as tmp:
        root = Path(tmp)
        base = base_image(env, shape.arches, root / "base")
        fleet = start_fleet(env, shape.hosts, root / "fleet")
        print(
            f"fleet: {shape.hosts} sshd under {fleet.root}, cgroup {fleet.cgroup or 'none'}",
            file=sys.stderr,
            flush=True,
        )
        try:
            config = write_project(root / "project", env, shape, fleet, base)
            measure(root / "project", config, env, shape, fleet, base, rounds, small)
        finally:
            fleet.stop()


def probe_and_plan(config: Path, reps: int) -> dict[str, Any]:
    """In a fresh process: probe the config's hosts (connecting to each), then plan ``reps``
    times on those probes."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.release_scale", "--child-plan", str(config), str(reps)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"planning child failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.split(RESULT_PREFIX, 1)[1].splitlines()[0])
    return result


def probe_scaling(env: dict[str, str], counts: list[int], reps: int) -> None:
    """How the probe (a fresh process connecting to every host and probing it) grows with
    the hosts: one fleet of the largest count, configs of its first N hosts. No figures: a
    table on stdout for docs/scale.md."""
    with tempfile.TemporaryDirectory(prefix="matui-probe-scaling-") as tmp:
        root = Path(tmp)
        fleet = start_fleet(env, max(counts), root / "fleet")
        try:
            print(
                f"hosts  probe (connect + probe, median of {reps})  per host  "
                "matui CPU  per host  plan 8x4"
            )
            for n in counts:
                config = write_project(
                    root / f"p{n}", env, Shape(8, ARCHES, n), fleet, env["MATUI_RIG_BASE_IMAGE"]
                )
                runs = [probe_and_plan(config, 5) for _ in range(reps)]
                probe = median([r["probe_s"] for r in runs])
                plan = median([r["plan_s"] for r in runs])
                cpu = median([r["probe_cpu_s"] for r in runs])
                print(
                    f"{n:5d}  {probe * 1000:8.0f} ms  {probe / n * 1000:8.1f} ms  "
                    f"{cpu * 1000:6.0f} ms  {cpu / n * 1000:5.1f} ms  {plan * 1000:.2f} ms",
                    flush=True,
                )
        finally:
            fleet.stop()


def follow_cost(jobs: int, seconds: float) -> None:
    """What following a running job costs its host: ``jobs`` copies of matui's follow script
    (:func:`matui.engine.shell.follow_script`, as a host runs it for each job being followed)
    on job directories whose build holds its lock and writes nothing, for ``seconds``; their
    CPU (this process's children). Then the same script polling every 0.5 s instead of every
    0.05 s, to size that change. No figures: lines on stdout for docs/scale.md."""
    from matui.engine.shell import follow_script

    for poll in ("0.05", "0.5"):

        def script(job: str, pid: int, poll: str = poll) -> str:
            text = follow_script("bench", job, 0, pid).script
            if poll != "0.05":
                text = text.replace("do sleep 0.05; done", f"do sleep {poll}; done")
            return text

        cpu, elapsed = _follow(jobs, seconds, script)
        print(
            f"following {jobs} running jobs for {elapsed:.1f} s, polling every {poll} s: "
            f"{cpu:.2f} CPU s, {cpu / elapsed / jobs * 100:.2f} % of a core per job followed",
            flush=True,
        )


def _follow(jobs: int, seconds: float, script: Any) -> tuple[float, float]:
    """Run ``script(job, pid)`` for ``jobs`` locked, silent jobs for ``seconds``: CPU, wall."""
    with tempfile.TemporaryDirectory(prefix="matui-follow-cost-") as tmp:
        home = Path(tmp)
        holders, followers = [], []
        for i in range(jobs):
            job = home / ".matui" / "runs" / "bench" / f"j{i}"
            job.mkdir(parents=True)
            (job / "build.log").write_text("")
            holder = subprocess.Popen(["flock", str(job / "lock"), "sleep", str(seconds + 30)])
            (job / "pid").write_text(str(holder.pid))
            holders.append(holder)
        time.sleep(0.5)  # every lock taken
        before = children_cpu()
        started = time.perf_counter()
        for i in range(jobs):
            followers.append(
                subprocess.Popen(
                    ["sh", "-c", script(f"j{i}", holders[i].pid)],
                    env={**os.environ, "HOME": str(home)},
                )
            )
        time.sleep(seconds)
        for i in range(jobs):
            (home / ".matui" / "runs" / "bench" / f"j{i}" / "exit").write_text("0\n")
        for follower in followers:
            follower.wait()
        elapsed = time.perf_counter() - started
        cpu = children_cpu() - before
        for holder in holders:
            holder.kill()
            holder.wait()
    return cpu, elapsed


def measure(
    project: Path,
    config: Path,
    env: dict[str, str],
    shape: Shape,
    fleet: Fleet,
    base: str,
    rounds: int,
    small: bool,
) -> None:
    # Planning on the real probes first, while the hosts are idle.
    planned = probe_and_plan(config, 50)

    state = project / "state"
    # Untimed warm-up: both engines pull the base image for every arch, the hosts' first
    # logins happen, and the plan gives the host of each job for the by-hand side.
    fresh_dockerfiles(project, shape.images)
    _, warm = through_matui(config, state)
    jobs: list[dict[str, Any]] = warm["jobs"]
    matui_walls: list[float] = []
    hand_walls: list[float] = []
    matui_cpu: list[float] = []  # matui's process + the hosts' logins
    hand_cpu: list[float] = []  # ssh and tar here + the hosts' logins
    host_cpu: dict[str, list[float]] = {"matui": [], "hand": []}
    results: list[dict[str, Any]] = []
    for i in range(rounds):
        for side in ("matui", "hand") if i % 2 == 0 else ("hand", "matui"):
            fresh_dockerfiles(project, shape.images)
            on_hosts = fleet.cpu_seconds()
            if side == "matui":
                wall, result = through_matui(config, state)
                matui_walls.append(wall)
                results.append(result)
                jobs = result["jobs"]
                local = result["cpu_s"]
            else:
                wall, local = by_hand(project, env, fleet, jobs, base)
                hand_walls.append(wall)
            after = fleet.cpu_seconds()
            hosts_s = after - on_hosts if after is not None and on_hosts is not None else 0.0
            host_cpu[side].append(hosts_s)
            (matui_cpu if side == "matui" else hand_cpu).append(local + hosts_s)
        print(
            f"round {i + 1}: matui {matui_walls[-1]:.1f} s (to launch "
            f"{results[-1]['start_s']:.1f} s; CPU {results[-1]['cpu_s']:.1f} s here + "
            f"{host_cpu['matui'][-1]:.1f} s in the hosts' logins), by hand "
            f"{hand_walls[-1]:.1f} s (CPU {hand_cpu[-1] - host_cpu['hand'][-1]:.1f} s here + "
            f"{host_cpu['hand'][-1]:.1f} s in the hosts' logins)",
            file=sys.stderr,
            flush=True,
        )
    m, h = median(matui_walls), median(hand_walls)
    spread = sorted({job["host"] for job in jobs})
    per_host = max(sum(1 for j in jobs if j["host"] == name) for name in spread)
    peaks = {k: max(r["peaks"][k] for r in results) for k in results[0]["peaks"]}
    emit(
        Figure(
            name="release_wall",
            what=f"a release of {shape}: {shape.jobs} builds, process start to exit",
            value=m,
            unit="s",
            baseline="the same builds over ssh by hand, all at once",
            baseline_value=h,
            ratio=m / h,
            ratio_text="matui time / by-hand time",
            target="<= 1.10x",
            met=m / h <= 1.10,
            detail=f"median of {rounds} after a warm-up release; matui to launch median "
            f"{median([r['start_s'] for r in results]):.1f} s (probe, plan, pre-flight, "
            f"upload); {len(spread)} hosts used, at most {per_host} jobs on one; matui's "
            f"process at most {peaks['tasks']} asyncio tasks, {peaks['fds']} fds "
            f"({peaks['sockets']} sockets), {peaks['threads']} threads",
        )
    )
    mc, hc = median(matui_cpu), median(hand_cpu)
    emit(
        Figure(
            name="release_cpu",
            what="CPU for that release outside the engines: matui's process + the hosts' "
            "logins (sessions, shells, wrappers, docker/buildx clients)",
            value=mc,
            unit="s",
            baseline="by hand: ssh and tar + the hosts' logins",
            baseline_value=hc,
            ratio=mc / hc if hc else float("nan"),
            ratio_text="matui CPU / by-hand CPU",
            target="<= 1.5x",
            met=bool(hc) and mc / hc <= 1.5,
            detail=f"median of {rounds}; matui's process "
            f"{median([r['cpu_s'] for r in results]):.1f} s, the hosts' logins "
            f"{median(host_cpu['matui']):.1f} s (by hand "
            f"{median(host_cpu['hand']):.1f} s)"
            + ("" if fleet.cgroup else "; no cpuacct cgroup here: hosts' logins not counted"),
        )
    )
    peak = max(r["rss_peak"] for r in results) / 2**20
    loaded = median([r["rss_loaded"] for r in results]) / 2**20
    lines = median([r["lines"] for r in results])
    emit(
        Figure(
            name="release_rss",
            what=f"matui's peak RSS (VmHWM) over a release of {shape.jobs} builds",
            value=peak,
            unit="MiB",
            baseline="its RSS with modules imported and config loaded",
            baseline_value=loaded,
            ratio=peak / loaded,
            ratio_text="peak / loaded RSS",
            target="<= 200 MiB",
            met=peak <= 200,
            detail=f"{lines:.0f} log lines read per release",
        )
    )
    emit(
        Figure(
            name="release_plan",
            what=f"plan_release: {shape.images} images x {len(shape.arches)} arches on "
            f"{shape.hosts} probed hosts",
            value=planned["plan_s"] * 1000,
            unit="ms",
            baseline=f"probing the {shape.hosts} hosts",
            baseline_value=planned["probe_s"] * 1000,
            ratio=planned["plan_s"] / planned["probe_s"],
            ratio_text="plan time / probe time",
            target="<= 50 ms",
            met=planned["plan_s"] <= 0.05,
            detail=f"median of 50; plan uses {len(planned['hosts_used'])} hosts",
        )
    )
    big = time_synthetic_plan(100, 50, 3 if small else 5)
    ref = time_synthetic_plan(12, 8, 20)
    emit(
        Figure(
            name="release_plan_100x50",
            what="plan_release: 50 images x 4 arches on 100 hosts (synthetic probes, no rig)",
            value=big * 1000,
            unit="ms",
            baseline="the same on 12 hosts x 8 images (52x fewer host-job pairs)",
            baseline_value=ref * 1000,
            ratio=big / ref,
            ratio_text="100x50 time / 12x8 time",
            target="<= 1000 ms",
            met=big <= 1.0,
            detail=f"median of {3 if small else 5}",
        )
    )
    view, _ = paint_time("matui", config)  # warm the page cache and .pyc files
    paint_time("bare", config)
    matui_paint, bare_paint = [], []
    for _ in range(3 if small else 7):
        matui_paint.append(paint_time("matui", config)[1])
        bare_paint.append(paint_time("bare", config)[1])
    mp, bp = median(matui_paint), median(bare_paint)
    shown = (
        "the release view (images x arches grid)"
        if view == "release"
        else "the first image's dashboard (this matui has no release view)"
    )
    emit(
        Figure(
            name="release_first_paint",
            what=f"dashboard on the release's config ({shape}), process start to first "
            f"paint of {shown} ({SIZE[0]}x{SIZE[1]}, headless)",
            value=mp,
            unit="s",
            baseline="bare Textual app",
            baseline_value=bp,
            ratio=mp / bp,
            ratio_text="matui time / bare Textual time",
            target="<= 1 s",
            met=mp <= 1.0,
            detail=f"median of {len(matui_paint)}",
        )
    )
    count = 20_000 if small else 400_000
    per_line = log_bytes_per_line(count)
    emit(
        Figure(
            name="release_log_per_line",
            what=f"memory per 80-character log line in a job's LogStore ({count} lines)",
            value=per_line,
            unit="B/line",
            baseline="the line's own bytes (80 + a line break)",
            baseline_value=81,
            ratio=per_line / 81,
            ratio_text="bytes held / line bytes",
            target="<= 1.25x",
            met=per_line / 81 <= 1.25,
            detail="tracemalloc, no memory limit (nothing spilled)",
        )
    )


if __name__ == "__main__":
    main()
