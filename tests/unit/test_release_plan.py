"""A release of many images: planned jointly against one pool (each image's jobs count on the
hosts the next one chooses from), jobs past a host's max_jobs wait for a slot there, and the
slots are shared by the release's runs (entries that are one machine share one count)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from matui.engine.arch import Platform
from matui.engine.build.slots import HostSlots
from matui.engine.build.start import release_images
from matui.engine.config import Config, ConfigError, HostConfig, ImageConfig
from matui.engine.plan import PlanError, plan_release
from matui.engine.probe import HostProbe

AMD64, ARM64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")


def image(name: str, *platforms: Platform) -> ImageConfig:
    return ImageConfig(
        name=f"127.0.0.1:5000/team/{name}",
        tags=("1.0",),
        context=Path("/ctx"),
        platforms=platforms or (AMD64, ARM64),
    )


def probe(name: str, native: str, *, jobs: int = 0, machine: str | None = None) -> HostProbe:
    return HostProbe(
        name,
        native,
        reachable=True,
        native_arch=native,
        cpus=4,
        load=0.1,
        jobs_running=jobs,
        free_bytes=100 << 30,
        machine=machine or f"m-{name}",
    )


def test_images_of_a_release_spread_over_the_pool() -> None:
    hosts = [HostConfig("amd-1", "amd64", "h"), HostConfig("amd-2", "amd64", "h")]
    probes = [probe("amd-1", "amd64"), probe("amd-2", "amd64")]
    images = [(image(n, AMD64), ("1.0",)) for n in ("a", "b", "c", "d")]
    plans = plan_release(images, hosts, probes)
    assert [plan.jobs[0].host for plan in plans] == ["amd-1", "amd-2", "amd-1", "amd-2"]
    # The second image's reason counts the first image's job on amd-1.
    assert plans[1].jobs[0].reason.startswith("least busy: 0 matui jobs")


def test_a_release_past_max_jobs_waits_for_slots_and_says_so() -> None:
    hosts = [HostConfig("amd-1", "amd64", "h", max_jobs=1)]
    plans = plan_release(
        [(image(n, AMD64), ("1.0",)) for n in ("a", "b")], hosts, [probe("amd-1", "amd64")]
    )
    assert [plan.jobs[0].host for plan in plans] == ["amd-1", "amd-1"]
    assert "waits for a slot" not in plans[0].jobs[0].reason
    assert (
        plans[1]
        .jobs[0]
        .reason.endswith(
            "; waits for a slot there (max_jobs = 1: 1 matui job running or planned before it)"
        )
    )


def test_a_release_names_every_image_it_cannot_plan() -> None:
    hosts = [HostConfig("amd-1", "amd64", "h")]
    with pytest.raises(PlanError) as caught:
        plan_release(
            [(image("a", AMD64), ("1.0",)), (image("b", ARM64), ("1.0",))],
            hosts,
            [probe("amd-1", "amd64")],
        )
    assert str(caught.value).startswith("127.0.0.1:5000/team/b: linux/arm64")


def test_release_images_all_or_the_named_ones_in_config_order() -> None:
    config = Config(hosts=(), images=(image("a"), image("b"), image("c")), path=None, warnings=())
    assert [i.name.rsplit("/", 1)[1] for i in release_images(config)] == ["a", "b", "c"]
    named = release_images(config, ["127.0.0.1:5000/team/c", "127.0.0.1:5000/team/a"])
    assert [i.name.rsplit("/", 1)[1] for i in named] == ["a", "c"]
    with pytest.raises(ConfigError) as caught:
        release_images(config, ["nope"])
    assert "configured images:" in str(caught.value)


def test_slots_cap_each_machine_and_hand_over_in_order() -> None:
    hosts = [
        HostConfig("one", "amd64", "h", max_jobs=2),
        HostConfig("one-again", "amd64", "h", max_jobs=2),
        HostConfig("free", "amd64", "h"),
    ]
    probes = [
        # Another run's job takes one of "one"'s two slots; "one-again" is the same machine.
        probe("one", "amd64", jobs=1, machine="m"),
        probe("one-again", "amd64", jobs=1, machine="m"),
        probe("free", "amd64"),
    ]
    slots = HostSlots.for_hosts(hosts, probes)
    assert (slots.cap("one"), slots.cap("free")) == (1, None)

    async def scenario() -> list[str]:
        order: list[str] = []
        release_first = asyncio.Event()

        async def job(name: str, host: str, hold: asyncio.Event | None) -> None:
            async with slots.slot(host):
                order.append(name)
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(job("first", "one", release_first))
        while not order:
            await asyncio.sleep(0)
        second = asyncio.create_task(job("second", "one-again", None))
        uncapped = asyncio.create_task(job("uncapped", "free", None))
        await uncapped  # no cap: never waits
        assert order == ["first", "uncapped"]
        assert not slots.free("one-again") and slots.in_use("one") == 1
        release_first.set()
        await asyncio.gather(first, second)
        assert slots.in_use("one") == 0
        return order

    assert asyncio.run(scenario()) == ["first", "uncapped", "second"]


def test_a_host_without_probe_keeps_its_own_cap() -> None:
    slots = HostSlots.for_hosts([replace(HostConfig("x", "amd64", "h"), max_jobs=3)], [])
    assert slots.cap("x") == 3
