"""The retry menu (key ``r``): how to build a failed arch again, the retry that fits its cause
first.

A plain retry of a build error fails the same way, a full disk wants another host, a corrupt
cache wants ``--no-cache``: the engine says which (:meth:`BuildRun.retry_choices
<matui.engine.build.run.BuildRun.retry_choices>`), this screen only shows its choices — the same
host, each other host that can build the arch, without cache, with a fresh base — with the
suggested one first and marked, and the cause's advice above them. ``enter`` retries the
highlighted choice (the screen is dismissed with its :class:`RetryOptions`), ``esc`` keeps
things as they are (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from matui.engine.build.retry import RetryChoice, RetryOptions, RetrySuggestion

__all__ = ["RetryScreen"]

SUGGESTED = "suggested"
"""How the choice that fits the cause is marked."""


class RetryScreen(ModalScreen[RetryOptions | None]):
    """The ways to retry ``arch``; dismissed with the chosen :class:`RetryOptions`, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back", id="retry.back"),
    ]
    DEFAULT_CSS = """
    #retry-choices { height: auto; max-height: 12; margin: 1 0; }
    """

    def __init__(
        self,
        arch: str,
        headline: str,
        suggestion: RetrySuggestion,
        choices: Sequence[RetryChoice],
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.arch = arch
        self.headline = headline
        self.suggestion = suggestion
        self.choices = list(choices)

    def compose(self) -> ComposeResult:
        # Text, not markup: host names and causes come from the config and the log.
        advice = Text(f"{self.headline}\n")
        advice.append(self.suggestion.advice, style="bold" if self.suggestion.kind else "")
        options = []
        for index, choice in enumerate(self.choices):
            label = Text(choice.label)
            if choice.suggested:
                label.append(f"  ← {SUGGESTED}", style="bold")
            options.append(Option(label, id=str(index)))
        with Vertical(id="retry-menu", classes="dialog"):
            yield Static(advice, id="retry-advice")
            yield OptionList(*options, id="retry-choices")
            yield Static(Text("enter retries · esc keeps it as it is", style="dim"))

    def on_mount(self) -> None:
        menu = self.query_one("#retry-menu")
        menu.border_title = f"Retry {self.arch}"
        choices = self.query_one("#retry-choices", OptionList)
        choices.highlighted = 0
        choices.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        index = int(event.option.id or 0)
        self.dismiss(self.choices[index].options)

    def action_cancel(self) -> None:
        self.dismiss(None)
