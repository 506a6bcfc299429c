"""Key bindings shared by every list and tree: j/k move like the arrows (vi, htop, k9s)."""

from textual.binding import Binding

VI_KEYS = [
    Binding("j", "cursor_down", "Down", show=False, id="nav.down"),
    Binding("k", "cursor_up", "Up", show=False, id="nav.up"),
]
