"""``ProgressParser.feed_lines`` is ``feed`` line by line, only faster: same events, same state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from matui.engine.build.progress import ProgressParser

VOCABULARY = [
    "",
    "#1 [internal] load build definition from Dockerfile",
    "#1 transferring dockerfile: 32B done",
    "#1 DONE 0.0s",
    "#5 [2/4] RUN make",
    "#5 0.243 cc -c a.c",
    "#5 12.5 ld -o app",
    "#5 0.3",
    "#5 ...",
    "#5 DONE 1.2s",
    "#5 CACHED",
    "#5 CANCELED",
    "#5 ERROR: executor failed running [/bin/sh -c make]: exit code: 2",
    "#12 0.1 exec format error",
    "#12 0.1 [output clipped, log limit 2MiB reached]",
    "#6 [linux/arm64 1/2] FROM busybox",
    "#6 0.5 WARN: InvalidBaseImagePlatform: pulled with platform linux/amd64, expected arm64",
    "#7 exporting to image",
    "#0 building with default instance using docker driver",
    "#12",
    "#12 ",
    "#12 x",
    "# 3 not a step",
    "#x 1 not a step",
    "#٣ 1 arabic-indic digit",
    "#5 ٣ arabic-indic digit",
    "ERROR: failed to solve: process did not complete successfully: exit code: 2",
    "ERROR: failed to receive status: rpc error: code = Canceled",
    "------",
    " > [3/4] RUN make:",
    "Dockerfile:3",
    "plain text",
]


def state(parser: ProgressParser) -> tuple[object, ...]:
    return (
        parser.current_step,
        parser.failing_step,
        parser.clipped,
        parser.notes,
        parser.solve_error,
        parser.arch_evidence,
        parser._fresh,
    )


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(VOCABULARY), max_size=60),
    st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=20),
)
def test_feed_lines_matches_feed(lines: list[str], cuts: list[int]) -> None:
    one, many = ProgressParser(), ProgressParser()
    expected = [event for line in lines for event in one.feed(line)]
    got = []
    pos, i = 0, 0
    while pos < len(lines):
        size = cuts[i % len(cuts)]
        got += many.feed_lines(lines[pos : pos + size])
        pos += size
        i += 1
    assert got == expected
    assert state(many) == state(one)


def test_feed_lines_skips_output_runs_but_not_a_name_after_a_blank_line() -> None:
    parser = ProgressParser()
    events = parser.feed_lines(
        ["#5 [2/4] RUN make", *(f"#5 0.{i:03d} out" for i in range(500)), "", "#5 0.9 resumed"]
    )
    assert [(e.step, e.state, e.name) for e in events] == [(5, "started", "[2/4] RUN make")]
    assert parser.current_step == "[2/4] RUN make"


def test_feed_lines_with_a_newline_inside_a_line_is_fed_line_by_line() -> None:
    one, many = ProgressParser(), ProgressParser()
    lines = ["#1 [1/2] FROM x", "#1 0.1 a\n#2 [2/2] RUN y", "#1 DONE 0.1s"]
    assert many.feed_lines(lines) == [e for line in lines for e in one.feed(line)]
    assert state(many) == state(one)


def test_feed_text_is_feed_lines_of_the_split_text() -> None:
    lines = ["", "#5 [2/4] RUN make", "#5 0.1 x", "#5 DONE 0.2s", "", ""]
    one, many = ProgressParser(), ProgressParser()
    assert many.feed_text("\n".join(lines)) == one.feed_lines(lines)
    assert state(many) == state(one)
