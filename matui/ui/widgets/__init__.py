"""Widgets of the matui dashboard."""

from __future__ import annotations

from matui.ui.widgets.log_pane import LogPane

__all__ = ["LogPane"]
