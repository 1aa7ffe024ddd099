"""Copying text out of the dashboard: one helper every screen calls (``y`` on a log line, on a
failure card).

matui mostly runs in a terminal over SSH, often in tmux on a bastion: there is no clipboard API
to call, only the terminal's. The text goes out as an OSC 52 sequence (Textual's
``App.copy_to_clipboard``), which the operator's terminal may honour (kitty, iTerm2, WezTerm,
foot, xterm with ``allowWindowOps``, tmux with ``set-clipboard on``) or silently ignore: nothing
comes back to say which. So the toast says it was copied *where the terminal allows it*, never
that it is on the clipboard.

What is copied is already inert (the engine neutralised host text): an OSC 52 payload is base64,
so the text cannot end the sequence early either way.
"""

from __future__ import annotations

from typing import Any

from textual.app import App

__all__ = ["MAX_COPY", "copy_text"]

MAX_COPY = 64 * 1024
"""Characters copied at most. Terminals cap an OSC 52 sequence (xterm and tmux near 100 kB of
base64); past that, many drop the whole sequence. A build log line can be megabytes."""


def copy_text(app: App[Any], text: str, what: str) -> str:
    """Send ``text`` to the terminal's clipboard (OSC 52) and say so in a toast naming
    ``what`` was copied ("the selected line", "the failure card"). Text longer than
    :data:`MAX_COPY` is cut, and the toast says that too. Returns what was sent."""
    cut = len(text) > MAX_COPY
    if cut:
        text = text[:MAX_COPY]
    app.copy_to_clipboard(text)
    size = f"{len(text):,} characters" + (f", cut to the first {MAX_COPY:,}" if cut else "")
    app.notify(
        f"copied {what} ({size}) to the clipboard, where the terminal allows it (OSC 52)",
        title="Copied",
        timeout=4,
        markup=False,  # ``what`` may quote a host's text
    )
    return text
