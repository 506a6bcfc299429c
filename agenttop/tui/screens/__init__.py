"""The TUI's screens; ``base.LiveScreen`` is what the refresh loop feeds."""
