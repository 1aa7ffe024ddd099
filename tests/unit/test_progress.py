"""Plain-progress parsing, metadata files and terminal neutralising, over real buildx 0.13.1 logs.

The fixtures in tests/data/progress/ were captured on the rig (see README.md there); the two
``synthetic_*`` files are hand-written in the format of newer BuildKit/buildx.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matui.engine.build.progress import (
    CLIP_NOTE,
    ProgressParser,
    StepEvent,
    StepState,
    parse_metadata,
)
from matui.engine.text import decode_lines, neutralise

DATA = Path(__file__).resolve().parent.parent / "data" / "progress"

S, D, C, E, X = (
    StepState.STARTED,
    StepState.DONE,
    StepState.CACHED,
    StepState.ERROR,
    StepState.CANCELED,
)
FROM = "FROM 127.0.0.1:5000/matui/busybox:1.35@sha256:" + (
    "e39dd5abf3556f3859f795656a1edb089d3226d2ee57e30eafe48d5d33b03076"
)


def lines(name: str) -> list[str]:
    """As the parser gets them: through the runner's one decoder (inert, split on \\n)."""
    return decode_lines((DATA / name).read_bytes())


def run(name: str) -> tuple[ProgressParser, list[StepEvent]]:
    parser = ProgressParser()
    events: list[StepEvent] = []
    for line in lines(name):
        events.extend(parser.feed(line))
    return parser, events


def summary(events: list[StepEvent]) -> list[tuple[int, StepState, str | None]]:
    return [(e.step, e.state, e.name) for e in events]


# -- real logs ---------------------------------------------------------------------------------


def test_fixtures_are_small() -> None:
    for path in DATA.iterdir():
        assert path.stat().st_size < 50_000, path


def test_successful_build_steps_in_order() -> None:
    parser, events = run("ok.log")
    run3 = '[3/5] RUN echo "step one says hi" && cat /hello.txt'
    run4 = '[4/5] RUN for i in 1 2 3; do echo "line $i"; sleep 0.2; done'
    run5 = "[5/5] RUN echo to-stderr >&2 && uname -m"
    assert summary(events) == [
        (1, S, "[internal] load build definition from Dockerfile"),
        (1, D, "[internal] load build definition from Dockerfile"),
        (2, S, "[internal] load .dockerignore"),
        (2, D, "[internal] load .dockerignore"),
        (3, S, "[internal] load metadata for 127.0.0.1:5000/matui/busybox:1.35"),
        (3, D, "[internal] load metadata for 127.0.0.1:5000/matui/busybox:1.35"),
        (4, S, "[internal] load build context"),
        (4, D, "[internal] load build context"),
        (5, S, "[2/5] COPY hello.txt /hello.txt"),
        (5, D, "[2/5] COPY hello.txt /hello.txt"),
        # buildx 0.13.1 on BuildKit 0.8 never printed a DONE for this FROM step.
        (6, S, f"[1/5] {FROM}"),
        (7, S, run3),
        (7, D, run3),
        (8, S, run4),
        (8, D, run4),
        (9, S, run5),
        (9, D, run5),
        (10, S, "exporting to image"),
        (10, D, "exporting to image"),
    ]
    seconds = {e.step: e.seconds for e in events if e.state is D}
    assert seconds == {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 7: 0.3, 8: 1.0, 9: 0.4, 10: 0.0}
    assert all(e.seconds is None and e.message is None for e in events if e.state is S)
    assert parser.failing_step is None
    assert parser.solve_error is None
    assert parser.clipped is False
    assert parser.notes == []
    assert parser.arch_evidence == []
    # The FROM step was left without DONE, but the export ran after it: nothing is running.
    assert parser.current_step is None


def test_current_step_follows_the_active_step() -> None:
    parser = ProgressParser()
    seen: dict[str, str | None] = {}
    for line in lines("ok.log"):
        parser.feed(line)
        if line in {"#6 ...", "#7 0.243 step one says hi", "#8 0.549 line 2", "#9 DONE 0.4s"}:
            seen.setdefault(line, parser.current_step)
    assert seen == {
        # switched away from the FROM step, nothing else runs yet: still the FROM step
        "#6 ...": f"[1/5] {FROM}",
        "#7 0.243 step one says hi": '[3/5] RUN echo "step one says hi" && cat /hello.txt',
        "#8 0.549 line 2": '[4/5] RUN for i in 1 2 3; do echo "line $i"; sleep 0.2; done',
        "#9 DONE 0.4s": f"[1/5] {FROM}",
    }


def test_second_run_is_cached() -> None:
    parser, events = run("cached.log")
    ends = [(e.step, e.state, e.name) for e in events if e.state is not S]
    assert ends == [
        (1, D, "[internal] load build definition from Dockerfile"),
        (2, D, "[internal] load .dockerignore"),
        (3, D, "[internal] load metadata for 127.0.0.1:5000/matui/busybox:1.35"),
        (4, D, f"[1/5] {FROM}"),
        (5, D, "[internal] load build context"),
        (6, C, '[3/5] RUN echo "step one says hi" && cat /hello.txt'),
        (7, C, '[4/5] RUN for i in 1 2 3; do echo "line $i"; sleep 0.2; done'),
        (8, C, "[2/5] COPY hello.txt /hello.txt"),
        (9, C, "[5/5] RUN echo to-stderr >&2 && uname -m"),
        (10, D, "exporting to image"),
    ]
    assert all(e.seconds is None for e in events if e.state is C)
    assert parser.current_step is None


def test_failing_exit_3() -> None:
    parser, events = run("fail_exit3.log")
    error = "executor failed running [/bin/sh -c exit 3]: exit code: 3"  # BuildKit 0.8 wording
    assert events[-2:] == [
        StepEvent(6, S, "[3/3] RUN exit 3", None, None),
        StepEvent(6, E, "[3/3] RUN exit 3", None, error),
    ]
    assert parser.failing_step == (6, "[3/3] RUN exit 3", error)
    assert parser.solve_error == f"failed to solve: {error}"
    assert parser.current_step is None


def test_failing_step_with_output_and_framed_tail() -> None:
    parser, events = run("fail_with_output.log")
    name = (
        '[3/4] RUN echo "about to fail" && for i in 1 2 3 4 5 6 7 8 9 10 11 12; '
        'do echo "noise $i"; done && exit 3'
    )
    error = (
        'executor failed running [/bin/sh -c echo "about to fail" && for i in 1 2 3 4 5 6 7 8 9 '
        '10 11 12; do echo "noise $i"; done && exit 3]: exit code: 3'
    )
    # The framed tail (------, " > [3/4] ...:", "0.349 noise 3", ...) adds no events.
    assert summary(events)[-3:] == [
        (5, D, "[2/4] RUN echo before failing"),
        (6, S, name),
        (6, E, name),
    ]
    assert parser.failing_step == (6, name, error)
    assert parser.solve_error == f"failed to solve: {error}"


def test_modern_buildkit_failure_and_invalid_base_image_platform() -> None:
    parser, events = run("synthetic_modern_fail.log")
    error = 'process "/bin/sh -c exit 3" did not complete successfully: exit code: 3'
    assert events[-1] == StepEvent(6, E, "[3/3] RUN exit 3", None, error)
    assert parser.failing_step == (6, "[3/3] RUN exit 3", error)
    assert parser.solve_error == f"failed to solve: {error}"
    # The #1 WARN line and the summary after the build say the same thing: one entry.
    assert parser.arch_evidence == [
        "InvalidBaseImagePlatform: Base image 127.0.0.1:5000/matui/busybox:1.35-amd64 was pulled "
        'with platform "linux/amd64", expected "linux/arm64" for current build (line 1)'
    ]
    # The WARN line is a status line of step 1, not a new name.
    assert events[:2] == [
        StepEvent(1, S, "[internal] load build definition from Dockerfile", None, None),
        StepEvent(1, D, "[internal] load build definition from Dockerfile", 0.0, None),
    ]


def test_exec_format_error_is_evidence_once() -> None:
    parser, _ = run("exec_format_error.log")
    # Seen in the step's output and again in the framed tail.
    assert parser.arch_evidence == ["exec /usr/local/bin/foreign-bin: exec format error"]
    assert parser.failing_step is not None
    assert parser.failing_step[2] == (
        "executor failed running [/usr/local/bin/foreign-bin --version]: exit code: 1"
    )


def test_arm64_under_qemu_is_no_evidence() -> None:
    parser, events = run("arm64_qemu.log")
    assert [e.state for e in events if e.step == 5] == [S, D]
    assert parser.arch_evidence == []
    assert parser.failing_step is None


def test_parallel_stages_and_cancel() -> None:
    parser, events = run("parallel_fail.log")
    assert summary(events)[-4:] == [
        (5, S, "[b 2/2] RUN sleep 0.5; echo failing now; exit 3"),
        (5, E, "[b 2/2] RUN sleep 0.5; echo failing now; exit 3"),
        (6, S, "[a 2/2] RUN echo slow start; sleep 5; echo never printed"),
        (6, X, "[a 2/2] RUN echo slow start; sleep 5; echo never printed"),
    ]
    assert parser.failing_step is not None and parser.failing_step[0] == 5
    assert parser.current_step is None


def test_step_renamed_after_export_is_not_current() -> None:
    parser, events = run("parallel.log")
    # "#3 [internal] load metadata ..." is printed again as the very last line, with no DONE.
    assert lines("parallel.log")[-2].startswith("#3 [internal] load metadata")
    assert [e.step for e in events if e.state is S] == list(range(1, 11))
    assert parser.current_step is None


def test_push_step_after_export() -> None:
    parser, events = run("push.log")
    assert summary(events)[-4:] == [
        (6, S, "exporting to image"),
        (6, D, "exporting to image"),
        (7, S, "pushing 127.0.0.1:5000/progress-test/x:t with docker"),
        (7, D, "pushing 127.0.0.1:5000/progress-test/x:t with docker"),
    ]
    assert events[-1].seconds == 0.1
    assert parser.current_step is None


def test_many_output_lines_give_no_events() -> None:
    _, events = run("many_lines.log")
    assert sum(1 for line in lines("many_lines.log") if line.startswith("#5 0.")) == 600
    assert len(events) == 12
    assert events[-3] == StepEvent(
        5,
        D,
        '[2/2] RUN i=0; while [ $i -lt 600 ]; do echo "output line number $i of a chatty step"; '
        "i=$((i+1)); done",
        0.2,
        None,
    )


def test_top_level_error_without_solve() -> None:
    parser, events = run("multiplatform_docker_driver.log")
    assert events == []
    assert parser.solve_error == "Multi-platform build is not supported for the docker driver."


def test_escape_log_parses_as_the_decoder_makes_it_inert() -> None:
    _, events = run("escapes.log")
    assert [e.state for e in events if e.step == 5] == [S, D]
    output = [line.split(" ", 2)[2] for line in lines("escapes.log") if line.startswith("#5 0.")]
    assert output == [
        "cleared screen",
        "red bold green",
        "osc52:  after",
        "title  done",
        "dcs  gone",
        "c1  csi8 ",  # 8-bit CSI takes "2J"; the unterminated 8-bit OSC swallows the rest
        "progress 100%",
        "tab\there bell del lone end",
    ]


# -- clip notice ---------------------------------------------------------------------------------


def test_clipped_log() -> None:
    parser, events = run("synthetic_clipped.log")
    assert parser.clipped is True
    assert parser.notes == [CLIP_NOTE]  # twice in the log, noted once
    assert summary(events) == [
        (5, S, "[linux/arm64 2/3] RUN make -j8"),
        (6, S, "[linux/amd64 2/3] RUN make -j8"),
        (6, D, "[linux/amd64 2/3] RUN make -j8"),
        (5, D, "[linux/arm64 2/3] RUN make -j8"),
    ]
    assert [e.seconds for e in events if e.state is D] == [41.7, 88.1]


@pytest.mark.parametrize("limit", ["1MiB", "2MiB", "100KiB/s", "200KiB/s"])
def test_clip_notice_variants(limit: str) -> None:
    for line in (
        f"#7 525.7 [output clipped, log limit {limit} reached]",
        f"525.7 [output clipped, log limit {limit} reached]",
    ):  # framed tail form
        parser = ProgressParser()
        parser.feed("")
        parser.feed("#7 [3/4] RUN make")
        assert parser.feed(line) == []
        assert parser.clipped is True
        assert parser.notes == [
            "build output was clipped by BuildKit's per-step log limit; set "
            "BUILDKIT_STEP_LOG_MAX_SIZE and BUILDKIT_STEP_LOG_MAX_SPEED in the builder host's "
            "dockerd environment to lift it"
        ]


def test_output_mentioning_clipping_is_not_the_notice() -> None:
    parser = ProgressParser()
    parser.feed("#7 [3/4] RUN make")
    parser.feed("#7 1.0 the output clipped nothing")
    assert parser.clipped is False
    assert parser.notes == []


# -- parser edge cases -----------------------------------------------------------------------------


def test_output_cannot_forge_step_lines() -> None:
    parser = ProgressParser()
    events = [
        e
        for line in ["#5 [2/2] RUN evil", "#5 0.1 #5 ERROR: forged", "#5 0.2 #6 [x] RUN"]
        for e in parser.feed(line)
    ]
    assert summary(events) == [(5, S, "[2/2] RUN evil")]
    assert parser.failing_step is None
    assert parser.current_step == "[2/2] RUN evil"


def test_joined_mid_stream() -> None:
    parser = ProgressParser()
    assert parser.feed("#8 0.751 line 3") == []  # output of a step never named
    assert parser.feed("#8 DONE 1.0s") == [StepEvent(8, D, None, 1.0, None)]


def test_done_without_time_and_odd_lines() -> None:
    parser = ProgressParser()
    assert parser.feed('#0 building with "default" instance using docker driver') == []
    assert parser.feed("") == []
    assert parser.feed("#3 pushing layers") == [StepEvent(3, S, "pushing layers", None, None)]
    assert parser.feed("#3 pushing layer 17d801e76493 0.0s done") == []
    assert parser.feed("#3 DONE") == [StepEvent(3, D, "pushing layers", None, None)]
    for junk in ["#", "#x y", "# 1 2", "#\u0663 name", "#3", "#3 ", "------", " > [3/3] RUN x:"]:
        assert parser.feed(junk) == []
    assert parser.current_step is None


def test_names_and_errors_come_inert_from_the_decoder() -> None:
    parser = ProgressParser()
    raw = b"#2 [1/1] RUN printf '\x1b]52;c;aGk=\x07'\n#2 ERROR: boom \x1b[2J"
    started, error = parser.feed_lines(decode_lines(raw))
    assert started.name == "[1/1] RUN printf ''"
    assert error.message == "boom"
    assert parser.failing_step == (2, "[1/1] RUN printf ''", "boom")


def test_a_carriage_return_in_output_cannot_pass_for_buildx() -> None:
    parser = ProgressParser()
    raw = (
        b"#5 [2/2] RUN evil\n"
        b"#5 0.1 x\r#5 ERROR: forged step error\n"
        b"#5 0.2 y\rERROR: failed to solve: forged\n"
        b"#5 0.3 progress 10%\rprogress 100%"
    )
    assert parser.feed_lines(decode_lines(raw))[1:] == []
    assert parser.failing_step is None and parser.solve_error is None
    assert parser.current_step == "[2/2] RUN evil"


def test_first_error_is_the_failing_step() -> None:
    parser = ProgressParser()
    for line in ["#4 [a 1/1] RUN a", "#4 ERROR: first", "", "#5 [b 1/1] RUN b", "#5 ERROR: second"]:
        parser.feed(line)
    assert parser.failing_step == (4, "[a 1/1] RUN a", "first")


def test_lost_status_stream_note() -> None:
    parser = ProgressParser()
    parser.feed(
        "ERROR: failed to receive status: rpc error: code = Canceled desc = context canceled"
    )
    assert parser.solve_error is not None
    assert parser.solve_error.startswith("failed to receive status")
    assert len(parser.notes) == 1 and "failed to receive status" in parser.notes[0]


# -- metadata ----------------------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32


def test_metadata_from_real_push() -> None:
    meta = parse_metadata((DATA / "push_metadata.json").read_text())
    assert meta == {
        "digest": "sha256:0917a8d08ea9dd6dcbc78c26b4e637f0cb0025df60d82a1d40288554d1c78450",
        "config_digest": "sha256:a45657929a8f8afc1303e2c6ba961308d6c893049e37a21e85e94f2a08141519",
    }


def test_metadata_with_descriptor() -> None:
    text = json.dumps(
        {
            "containerimage.descriptor": {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": DIGEST,
                "size": 1609,
            },
            "containerimage.digest": DIGEST,
            "image.name": "127.0.0.1:5000/progress-test/x:t",
        }
    )
    assert parse_metadata(text) == {
        "digest": DIGEST,
        "media_type": "application/vnd.oci.image.index.v1+json",
        "image_name": "127.0.0.1:5000/progress-test/x:t",
    }


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("{}", "no containerimage.digest"),
        ("not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"containerimage.digest": None}), "not a sha256 digest"),
        (json.dumps({"containerimage.digest": "sha256:" + "AB" * 32}), "not a sha256 digest"),
        (json.dumps({"containerimage.digest": "sha256:abc"}), "not a sha256 digest"),
        (json.dumps({"containerimage.digest": DIGEST + "\n"}), "not a sha256 digest"),
        (json.dumps({"containerimage.digest": "sha256:" + "\uff10" * 64}), "not a sha256 digest"),
        (json.dumps({"containerimage.digest": "sha512:" + "ab" * 64}), "not a sha256 digest"),
        (
            json.dumps({"containerimage.digest": DIGEST, "containerimage.config.digest": "x"}),
            "containerimage.config.digest",
        ),
        (
            json.dumps(
                {
                    "containerimage.digest": DIGEST,
                    "containerimage.descriptor": {"digest": "sha256:" + "cd" * 32},
                }
            ),
            "does not match",
        ),
        (
            json.dumps(
                {
                    "containerimage.digest": DIGEST,
                    "containerimage.descriptor": {"mediaType": "text/x\x1b[2J"},
                }
            ),
            "mediaType",
        ),
        (
            json.dumps({"containerimage.digest": DIGEST, "containerimage.descriptor": "x"}),
            "not an object",
        ),
    ],
)
def test_metadata_rejects(doc: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_metadata(doc)


# -- neutralise ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("plain text", "plain text"),
        ("\x1b[2Jcleared", "cleared"),
        ("\x1b[31mred\x1b[0m \x1b[1;32mbold\x1b[m", "red bold"),
        ("a\x1b]52;c;aGVsbG8=\x07b", "ab"),  # OSC 52 clipboard write, BEL-terminated
        ("a\x1b]52;c;aGVsbG8=\x1b\\b", "ab"),  # ... ST-terminated
        ("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # hyperlink
        ("a\x1b]52;c;aGVsbG8=", "a"),  # unterminated: swallows the rest
        ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),  # DCS
        ("a\x1b_apc\x1b\\b\x1b^pm\x9cc", "abc"),  # APC, PM
        ("a\x9b2Jb", "ab"),  # 8-bit CSI
        ("a\x9d52;c;eA==\x9cb", "ab"),  # 8-bit OSC and ST
        ("a\x90dcs\x07b", "ab"),
        ("a\x1bcb", "ab"),  # RIS
        ("a\x1b(Bb", "ab"),  # charset designation
        ("end\x1b", "end"),  # lone ESC
        ("bell\x07 del\x7f nul\x00 bs\x08 vt\x0b ff\x0c so\x0e", "bell del nul bs vt ff so"),
        ("c1\x85\x8d\x99 end", "c1 end"),
        ("apc\x9f swallows the rest", "apc"),
        ("tab\there", "tab\there"),
        ("10%\r50%\r100%", "100%"),
        ("crlf line\r", "crlf line"),
        ("\x1b[1m10%\x1b[0m\r\x1b[1m100%\x1b[0m\r\n", "100%"),
        ("ünïcödé ✓ 日本", "ünïcödé ✓ 日本"),
        ("zero\u200bwidth\u00a0nbsp", "zero\u200bwidth\u00a0nbsp"),
    ],
)
def test_neutralise_examples(raw: str, safe: str) -> None:
    assert neutralise(raw) == safe


def _unsafe(ch: str) -> bool:
    o = ord(ch)
    return (o < 0x20 and ch != "\t") or 0x7F <= o <= 0x9F


_NASTY = st.lists(
    st.one_of(
        st.characters(max_codepoint=0x2FF),
        st.characters(),
        st.sampled_from(
            ["\x1b[", "\x1b]", "\x1bP", "\x1b\\", "\x9b", "\x9d", "\x9c", "\x07", "\r", "\t", ";"]
        ),
    ),
    max_size=60,
).map("".join)


@given(_NASTY)
def test_neutralise_never_lets_controls_through(text: str) -> None:
    out = neutralise(text)
    assert not any(_unsafe(ch) for ch in out), repr(out)
    assert neutralise(out) == out


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_neutralise_keeps_printable_ascii(text: str) -> None:
    assert neutralise(text) == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))))
def test_neutralise_keeps_text_without_controls(text: str) -> None:
    assert neutralise(text) == text
