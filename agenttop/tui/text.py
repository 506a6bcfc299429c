"""Safe text: every untrusted string (span names, attribute keys and values, service names,
log bodies, finding excerpts) reaches the screen through this module.

Two dangers, two rules:

- Markup. Textual's DataTable and Tree parse a plain ``str`` as console markup, so a span
  named ``[bold red]x[/]`` would be styled (or crash the parser). Everything here returns
  ``rich.text.Text`` built from the raw characters, which nothing parses again.
- Terminal control. Textual strips nothing: an ESC (0x1B) in a span name would reach the
  terminal and could clear the screen or move the cursor. C0 and C1 controls, DEL and the
  Unicode bidi overrides are replaced by a visible escape (``\\x1b``, ``\\u202e``), so the
  user sees that they were there.

Lists show one line per value, truncated with an ellipsis; the detail pane shows values
whole (newlines kept, tabs expanded) up to ``DETAIL_MAX_CHARS``.
"""

from __future__ import annotations

import re

from rich.style import Style
from rich.text import Text

# A value longer than this is cut in the detail pane too: rendering megabytes of one
# attribute would stall the UI thread, and nobody reads that much in a terminal.
DETAIL_MAX_CHARS = 64 * 1024

# C0 controls except tab and newline, DEL, C1 controls (0x9B is a one-byte CSI on some
# terminals), line/paragraph separators and bidi embedding/override/isolate marks.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_ONE_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_ONE_LINE = {"\n": "\u21b5", "\t": " "}  # ↵ keeps a line break visible in one row


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ONE_LINE:
        return _ONE_LINE[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(value: object, *, multiline: bool = False) -> str:
    """``value`` as a string with every control character made visible.

    ``multiline`` keeps newlines and expands tabs (the detail pane); otherwise the result
    is one line: a newline shows as ``↵`` and a tab as a space.
    """
    text = value if isinstance(value, str) else str(value)
    if multiline:
        text = text.replace("\r\n", "\n").expandtabs(4)
        return _UNSAFE.sub(_escape, text)
    return _UNSAFE_ONE_LINE.sub(_escape, text)


def safe(
    value: object,
    style: str | Style = "",
    *,
    width: int | None = None,
    multiline: bool = False,
) -> Text:
    """Untrusted ``value`` as literal Text: never parsed as markup, controls escaped.

    ``width`` truncates to that many cells with an ellipsis (lists); without it the value
    is whole, up to ``DETAIL_MAX_CHARS`` characters.
    """
    raw = value if isinstance(value, str) else str(value)
    cut = 0
    if width is None and len(raw) > DETAIL_MAX_CHARS:
        cut = len(raw) - DETAIL_MAX_CHARS
        raw = raw[:DETAIL_MAX_CHARS]
    elif width is not None and len(raw) > width * 4 + 16:
        # Only the head can be shown; escaping the whole of a long value is wasted work.
        raw = raw[: width * 4 + 16]
    text = Text(clean(raw, multiline=multiline), style=style, end="", no_wrap=width is not None,
                overflow="ellipsis" if width is not None else None)
    if width is not None:
        text.truncate(max(width, 1), overflow="ellipsis")
    if cut:
        text.append(f" … ({cut:,} more characters)", style="italic")
    return text


def fit(text: Text, width: int) -> Text:
    """``text`` cut with an ellipsis or padded with spaces to exactly ``width`` cells."""
    out = text.copy()
    out.truncate(max(width, 0), overflow="ellipsis", pad=True)
    return out
