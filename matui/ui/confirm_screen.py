"""A one-question dialog for keys that act on a host: ``x`` (cancel an arch) asks before it
sends anything.

k9s and lazydocker users press ``x`` expecting a menu, not an action: a build that took twenty
minutes under QEMU must not die on a stray key. ``y`` or ``enter`` does it, ``esc`` or ``n``
keeps things as they are; the dialog names what will happen and where, in the operator's words.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["ConfirmScreen"]


class ConfirmScreen(ModalScreen[bool]):
    """Ask ``question``; dismissed with True (``y``/``enter``: do it) or False (``esc``/``n``:
    keep). ``yes`` and ``no`` say what each answer does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes"),
        Binding("escape,n", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, question: str, *, yes: str, no: str) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        # Text, not markup: the question can name a host or an arch from the config.
        text = Text(f"{self.question}\n\n")
        text.append("y", style="bold reverse")
        text.append("/")
        text.append("enter", style="bold reverse")
        text.append(f" = {self.yes}    ")
        text.append("esc", style="bold")
        text.append(f" = {self.no}")
        with Vertical(id="confirm", classes="dialog"):
            yield Static(text, id="confirm-text")

    def on_mount(self) -> None:
        self.query_one("#confirm").border_title = self.title_text

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
