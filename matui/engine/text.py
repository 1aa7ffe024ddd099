"""Host text made inert: every string that comes from a builder host passes here once, in the
engine, before it becomes an event, a record field or a message.

:func:`decode_lines` is the one decoder of a job's log bytes (the live follow, a resumed run's
stored log, lines a slow consumer reads back from the local copy); :func:`neutralise` makes any
other host string (stderr of a failed command, a probe's answers) safe to show.
"""

from __future__ import annotations

import re

# Any C0 control but TAB, DEL, any C1 control (U+0080-U+009F, the 8-bit forms of ESC sequences).
_UNSAFE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

_SEQUENCE_RE = re.compile(
    # The lookahead lets the regex engine skip quickly to the next control character.
    r"(?=[\x00-\x08\x0a-\x1f\x7f-\x9f])(?:"
    # Control strings: OSC (ESC ] / 0x9d; OSC 52 writes the clipboard), DCS (ESC P / 0x90),
    # SOS (ESC X / 0x98), PM (ESC ^ / 0x9e), APC (ESC _ / 0x9f). Ended by BEL or ST
    # (ESC \ / 0x9c); an unterminated one swallows the rest of the line, as in a terminal.
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])(?:[^\x07\x1b\x9c]|\x1b(?!\\))*(?:\x07|\x1b\\|\x9c|\Z)"
    # CSI (ESC [ / 0x9b): parameter bytes, intermediate bytes, final byte.
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    # Other escape sequences (ESC ( B, ESC 7, ESC c ...), then a lone ESC. (ESC SP x sequences
    # lose only the ESC: "lone ESC end" keeps its words.)
    r"|\x1b[\x21-\x2f]*[\x30-\x7e]?"
    # Every other control except TAB and CR (CR is handled after).
    r"|[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f-\x9f]"
    r")"
)


# Bytes of the controls a line may not keep, but LF: every C0 but TAB, and DEL. C1 controls
# (U+0080-U+009F) are C2 80..C2 9F in UTF-8.
_C0_BYTES = bytes([*range(0x09), *range(0x0B, 0x20), 0x7F])
_UNSAFE_IN_BLOCK_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# buildx's plain progress starts a step's output line with "#N " and its seconds ("0.349 " alone
# in the framed tail of a failed step).
_OUTPUT_PREFIX_RE = re.compile(r"(?:#[0-9]+ )?(?:[0-9]+\.[0-9]+ )?")


def decode_lines(block: bytes) -> list[str]:
    """Complete log lines (joined by ``\\n``, no final one) as inert text, one string a line.

    Invalid UTF-8 becomes U+FFFD (a newline byte is never part of a UTF-8 sequence, so decoding
    a block is the same as decoding each line); each line goes through :func:`neutralise`,
    which also drops a trailing ``\\r`` and keeps only the text after a line's last ``\\r`` —
    of the output after buildx's ``#N 0.349`` prefix, which stays: a progress bar in a step's
    output shows as its last state, and ``...\\rERROR: failed to solve`` cannot pass for
    buildx's own line. A block without controls (almost every one) costs one pass over its
    bytes in C.
    """
    text = block.decode("utf-8", "replace")
    lines = text.split("\n")
    if len(block.translate(None, _C0_BYTES)) == len(block) and (
        b"\xc2" not in block or _UNSAFE_IN_BLOCK_RE.search(text) is None
    ):
        return lines
    return [_inert_line(line) for line in lines]


def decode_block(block: bytes) -> tuple[str, list[str]]:
    """:func:`decode_lines`, and the same lines as one text (joined by ``\n``): the progress
    parser reads the text in one pass, so the lines are split once and never joined again
    (only a block that needed neutralising is joined anew)."""
    text = block.decode("utf-8", "replace")
    lines = text.split("\n")
    if len(block.translate(None, _C0_BYTES)) == len(block) and (
        b"\xc2" not in block or _UNSAFE_IN_BLOCK_RE.search(text) is None
    ):
        return text, lines
    lines = [_inert_line(line) for line in lines]
    return "\n".join(lines), lines


def _inert_line(line: str) -> str:
    if "\r" not in line:
        return neutralise(line)
    keep = _OUTPUT_PREFIX_RE.match(line)
    cut = keep.end() if keep else 0
    return line[:cut] + neutralise(line[cut:])


def neutralise(text: str) -> str:
    """Make remote output safe for a terminal UI.

    Removes every escape sequence (CSI such as ``ESC[2J`` and colours, OSC including OSC 52
    clipboard writes, DCS/SOS/PM/APC strings, other ESC sequences, their 8-bit C1 forms), every
    other C0 control except TAB, DEL and every C1 control. A carriage-return progress line keeps
    only the text after its last ``\\r`` (a trailing ``\\r`` is ignored). Text without controls is
    returned as is.
    """
    if text.isprintable() or _UNSAFE_RE.search(text) is None:
        return text
    text = _SEQUENCE_RE.sub("", text)
    if "\r" in text:
        text = text.rstrip("\r").rpartition("\r")[2]
    return text
