"""Number, time and size formatting for the TUI: short, fixed-width-friendly strings.

Pure functions of their arguments (times are formatted in the local time zone), so every
screen shows a figure the same way and tests can pin the output.
"""

from __future__ import annotations

import time

from agenttop.store.rows import SECOND_NS

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def duration(ns: int | float | None) -> str:
    """A span duration: ``850µs``, ``12.3ms``, ``1.24s``, ``2m03s``, ``1h05m``, ``10d04h``,
    ``20819d`` (at most six characters from a day on)."""
    if ns is None:
        return "–"
    if ns < 0:
        return "-" + duration(-ns)
    if ns < 1_000:
        return f"{ns:.0f}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f}µs"
    if ns < 10_000_000:
        return f"{ns / 1e6:.2f}ms"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f}ms" if ns < 100_000_000 else f"{ns / 1e6:.0f}ms"
    seconds = ns / SECOND_NS
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    days = int(seconds // 86400)
    return f"{days}d{int(seconds % 86400 // 3600):02d}h" if days < 100 else f"{days}d"


def millis(ms: float | None) -> str:
    """A latency given in milliseconds (as ``LayerHealth`` reports them)."""
    return "–" if ms is None else duration(ms * 1e6)


def clock(ns: int | None, *, millis: bool = True, today_ns: int | None = None) -> str:
    """Wall-clock time of day in the local zone: ``14:03:07.250``. With ``today_ns``, a time
    on another day says its date instead: ``Dec 01 14:03`` this year, ``2200-01-01`` in
    another (as long as the time of day with milliseconds, or shorter)."""
    if ns is None:
        return "–"
    seconds, rest = divmod(int(ns), SECOND_NS)
    when = time.localtime(min(seconds, _LATEST_S))
    if today_ns is not None:
        today = time.localtime(today_ns // SECOND_NS)
        if when.tm_year != today.tm_year:
            return time.strftime("%Y-%m-%d", when)
        if when.tm_yday != today.tm_yday:
            return time.strftime("%b %d %H:%M" if millis else "%b %d", when)
    text = time.strftime("%H:%M:%S", when)
    return f"{text}.{rest // 1_000_000:03d}" if millis else text


_LATEST_S = 253_402_300_799  # 9999-12-31: localtime() fails past it


def ago(delta_ns: int) -> str:
    """How long ago, coarse: ``5s``, ``3m``, ``2h``, ``4d``."""
    seconds = max(0, delta_ns) // SECOND_NS
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def count(n: int | float) -> str:
    """A count, compact: ``987``, ``12.3k``, ``4.5M``."""
    if n < 1000:
        return f"{n:.0f}" if isinstance(n, float) else str(n)
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if n < size * 1000 or unit == "G":
            value = n / size
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)  # unreachable


def rate(per_s: float | None) -> str:
    """A rate per second: ``0.4/s``, ``12/s``, ``3.4k/s``."""
    if per_s is None:
        return "–"
    if 0 < per_s < 0.1:
        return f"{per_s:.2f}/s"
    if per_s < 10:
        return f"{per_s:.1f}/s"
    return f"{count(per_s)}/s" if per_s >= 1000 else f"{per_s:.0f}/s"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage: ``0%``, ``0.4%``, ``6.2%``, ``100%``."""
    if fraction is None:
        return "–"
    value = fraction * 100
    if value == 0:
        return "0%"
    if value < 10:
        return f"{value:.1f}".removesuffix(".0") + "%"
    return f"{value:.0f}%"


def size(n: int | None) -> str:
    """Bytes: ``812 B``, ``4.2 MB``, ``1.1 GB``."""
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # unreachable


def sparkline(values: list[int] | list[float], width: int) -> str:
    """Values as block characters, each value ``width // len(values)`` cells wide.

    Zero is the lowest block, any non-zero value at least the second: a quiet minute
    must not look like an idle one.
    """
    if not values or width <= 0:
        return ""
    cells = max(1, width // len(values))
    top = max(values)
    out = []
    for value in values:
        if top <= 0 or value <= 0:
            char = SPARK_CHARS[0]
        else:
            char = SPARK_CHARS[max(1, round(value / top * (len(SPARK_CHARS) - 1)))]
        out.append(char * cells)
    return "".join(out)


def usd(value: float | None, unpriced: int = 0, partial: str = "+?") -> str:
    """A cost: "<$0.0001", "$0.0042", "$1.23", "$1,234"; "no price" when nothing could be priced;
    ``partial`` after it when some calls could not be."""
    if value is None:
        return "no price" if unpriced else "–"
    if value == 0:
        text = "$0"
    elif value < 0.0001:
        text = "<$0.0001"
    elif value < 0.01:
        text = f"${value:.4f}"
    elif value < 100:
        text = f"${value:.2f}"
    else:
        text = f"${value:,.0f}"
    return text + (partial if unpriced else "")


def places(seen: tuple[tuple[str, str, int], ...]) -> str:
    """Where one value was found: ``2 chat spans and a log`` from (signal, span name,
    count) triples, spans by their name's first word (the operation), most first."""
    counts: dict[str, int] = {}
    for signal, name, n in seen:
        what = f"{name.split(maxsplit=1)[0]} span" if signal == "span" and name.strip() else (
            "span" if signal == "span" else "log")
        counts[what] = counts.get(what, 0) + n
    words = [(("an " if what[0] in "aeiou" else "a ") + what) if n == 1 else f"{n} {what}s"
             for what, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
