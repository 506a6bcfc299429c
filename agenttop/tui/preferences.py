"""The user's settings for the UI: a TOML file in the user config directory.

```toml
theme = "gruvbox"     # any Textual theme (the palette's "Change theme" lists them)
bell = true           # ring the terminal bell when an alert fires or resolves (off)
window = "15m"        # the dashboard's, agents' and metrics' window at start: 1m 5m 15m

[keys]                # Textual's keymap: a binding's id = the keys that press it
"agenttop.quit" = "q,ctrl+q"
"trace.search" = "/,ctrl+f"
```

A missing file means the defaults. A file that cannot be used is refused whole with
every problem, each with its line (``config.toml:4: keys: no binding 'trace.serch'``),
before the UI starts: a setting silently ignored is a surprise later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from textual.dom import DOMNode
from textual.theme import BUILTIN_THEMES

from agenttop.analysis.health import WINDOWS_S
from agenttop.analysis.tomlfile import key_line, load_toml, read_text, where
from agenttop.config import format_duration, parse_duration

SETTINGS = ("theme", "bell", "window", "keys")
DEFAULT_WINDOW_S = 300


class PreferencesError(Exception):
    """The settings file cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class Preferences:
    theme: str | None = None  # None: Textual's default
    bell: bool = False
    window_s: int = DEFAULT_WINDOW_S
    keymap: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the file read (it may not exist)


def preferred_window_s(node: DOMNode) -> int:
    """The window a screen starts with: the running app's setting (or the default)."""
    try:
        preferences = getattr(node.app, "preferences", None)
    except RuntimeError:  # no app running (a screen built on its own)
        preferences = None
    return preferences.window_s if isinstance(preferences, Preferences) else DEFAULT_WINDOW_S


def load_preferences(path: Path, binding_ids: Iterable[str]) -> Preferences:
    """The settings in ``path`` (the defaults if it does not exist); ``binding_ids``: the
    ids a keymap may name. Raises ``PreferencesError``."""
    if not path.exists():
        return Preferences(path=path)
    text = read_text(path, PreferencesError, "settings file")
    data = load_toml(text, str(path), PreferencesError)
    lines = text.splitlines()
    problems: list[str] = []

    def problem(key: str, message: str) -> None:
        problems.append(where(str(path), key_line(lines, key, 1, len(lines), "keys"))
                        + message)

    for key in data:
        if key not in SETTINGS:
            problem(key, f"unknown setting {key!r} (settings: {', '.join(SETTINGS)})")
    theme = data.get("theme")
    if theme is not None and theme not in BUILTIN_THEMES:
        problem("theme", f"theme: no theme {theme!r} (themes: {', '.join(sorted(BUILTIN_THEMES))})")
    bell = data.get("bell", False)
    if not isinstance(bell, bool):
        problem("bell", f"bell: {bell!r} is not true or false")
    window_s = DEFAULT_WINDOW_S
    window = data.get("window")
    if window is not None:
        choices = ", ".join(format_duration(w) for w in WINDOWS_S)
        try:
            window_s = parse_duration(str(window))
        except ValueError:
            window_s = -1
        if window_s not in WINDOWS_S:
            problem("window", f"window: {window!r} is not one of {choices}")
    keymap = data.get("keys", {})
    known = set(binding_ids)
    if not isinstance(keymap, dict):
        problem("keys", "keys: a table of binding id = \"keys\" (see the help screen)")
        keymap = {}
    for binding_id, keys in keymap.items():
        if binding_id not in known:
            close = sorted(k for k in known if k.split(".")[0] == binding_id.split(".")[0])
            problem(binding_id, f"keys: no binding {binding_id!r}"
                    + (f" (its screen's: {', '.join(close)})" if close else
                       " (ids are listed on the help screen, ?)"))
        elif not isinstance(keys, str) or not keys.strip():
            problem(binding_id, f"keys: {binding_id} needs keys as text, e.g. \"ctrl+f,/\"")
    if problems:
        raise PreferencesError("\n".join(problems))
    return Preferences(theme=theme, bell=bell, window_s=window_s,
                       keymap={k: v.replace(" ", "") for k, v in keymap.items()}, path=path)
