"""Widgets of the TUI: the notice banner, layer cards, the trace table and the span tree."""
