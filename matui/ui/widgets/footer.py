"""The dashboard's footer: the keys by priority, so a narrow terminal drops the least needed.

Textual's footer shows every shown binding in order and cuts what does not fit at the right
edge; at 80 columns that cut ``?`` and ``q``. Here each key has a rank, and the footer hides
the lowest-ranked keys until the rest fit its width (``?`` lists them all), in compact form
below :data:`COMPACT` columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

COMPACT = 100
"""Columns below which the footer drops the padding around keys."""


class MatuiFooter(Footer):
    RANK: ClassVar[dict[str, int]] = {
        "quit_app": 0,
        "help": 1,
        "build": 2,
        "publish": 3,
        "retry": 4,
        "first_error": 5,
        "toggle_panel": 6,
        "search": 7,
        "cancel_arch": 8,
        "zoom": 9,
        "toggle_wrap": 10,
        "toggle_follow": 11,
        "save_log": 12,
        "command_palette": 13,
    }
    """Lower first: the order in which keys keep their place as the footer narrows."""

    _composed: tuple[object, ...] | None = None
    """What the keys on show were composed from (see :meth:`bindings_changed`)."""
    _shown: tuple[object, ...] | None = None
    """The keys on show now: the composed ones, or fewer (the rest hidden)."""
    _hidden: frozenset[tuple[str, str]] = frozenset()
    """(key, action) of the composed keys hidden because they are not active now."""

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        self._composed = self._shown = self._keys_shown() if self._bindings_ready else None
        self._hidden = frozenset()
        self._fit(widgets, self.app.size.width)
        yield from widgets

    def _keys_shown(self) -> tuple[object, ...]:
        """Everything of the active bindings that Footer.compose puts on screen: two flags,
        then (key, action, ...) of each key."""
        app = self.app
        active = self.screen.active_bindings
        keys: list[object] = [
            (b.key, b.action, app.get_key_display(b), b.description, b.group, enabled, tooltip)
            for _, b, enabled, tooltip in active.values()
            if b.show
        ]
        palette = active.get(app.COMMAND_PALETTE_BINDING)
        if palette is not None:
            _, b, enabled, _ = palette
            keys.append((b.key, b.action, app.get_key_display(b), b.description, enabled))
        return (self.show_command_palette, app.ENABLE_COMMAND_PALETTE, *keys)

    def bindings_changed(self, screen: Screen[object]) -> None:
        """Textual recomposes the footer (every key a new widget, then a layout of the screen)
        whenever the focus moves or a dialog opens or closes. Moving between panes leaves the
        same keys on show: nothing to do. The search box takes the letter keys: those keys
        are hidden, and shown again when it closes, rather than composed anew each time. Any
        other change recomposes."""
        composed = self._composed
        if composed is None or not self.is_attached or screen is not self.screen:
            super().bindings_changed(screen)
            return
        shown = self._keys_shown()
        if shown == self._shown:
            return
        keys = set(shown[2:])
        if shown[:2] == composed[:2] and keys <= set(composed[2:]):
            self._shown = shown
            self._hidden = frozenset(
                (str(k[0]), str(k[1]))  # type: ignore[index]
                for k in composed[2:]
                if k not in keys
            )
            self._fit(list(self.query(FooterKey)), self.size.width or self.app.size.width)
            return
        super().bindings_changed(screen)

    def on_resize(self) -> None:
        self._fit(list(self.query(FooterKey)), self.size.width)

    def _fit(self, widgets: Iterable[Widget], width: int) -> None:
        compact = width < COMPACT
        self.compact = compact
        keys = [w for w in widgets if isinstance(w, FooterKey)]
        for key in keys:
            key.display = (key.key, key.action) not in self._hidden
        keys = [key for key in keys if key.display]

        def cells(key: FooterKey) -> int:
            label = len(key.key_display) + (len(key.description) + 1 if key.description else 0)
            # Compact: "k Desc" and a margin; else " k Desc "; the palette key has a border.
            extra = 1 if compact else 2
            return label + extra + (2 if key.has_class("-command-palette") else 0)

        total = sum(cells(key) for key in keys)
        for key in sorted(keys, key=lambda k: self.RANK.get(k.action, 50), reverse=True):
            if total <= width:
                break
            key.display = False
            total -= cells(key)
