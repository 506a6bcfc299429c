"""Files of TOML array tables (``[[rule]]``, ``[[price]]``), each table validated by a
pydantic model, a problem reported in one line naming the file, the line, the table and
the field, as a user would want to find it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def read_text(path: Path, error: type[Exception], what: str) -> str:
    """The file's text; ``error`` saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file") from None


def parse_tables(text: str, filename: str, table: str, model: type[M],
                 error: type[Exception], *, label_key: str = "name",
                 others: frozenset[str] = frozenset()) -> list[tuple[M, int | None]]:
    """Each ``[[table]]`` of the text validated as ``model``, with its line (that of its
    ``label_key``, else the table's first).

    Raises ``error`` naming the file, line, table (by ``label_key`` or its number) and
    field of the first problem.
    """
    data = load_toml(text, filename, error)
    lines = text.splitlines()
    header = re.compile(rf"""^\s*\[\[\s*(?:{table}|"{table}"|'{table}')\s*\]\]""")
    headers = [i + 1 for i, line in enumerate(lines) if header.match(line)]
    for key in data:
        if key != table and key not in others:
            line = key_line(lines, key, 1, len(lines), table) or _table_line(lines, key)
            hint = _did_you_mean(key, [table])
            raise error(f"{where(filename, line)}unknown top-level key {key!r}{hint}; "
                        f"{table}s are [[{table}]] tables")
    entries = data.get(table, [])
    if not isinstance(entries, list):
        line = key_line(lines, table, 1, len(lines), table) or _table_line(lines, table)
        raise error(f"{where(filename, line)}'{table}' must be [[{table}]] tables")

    out: list[tuple[M, int | None]] = []
    problems: list[str] = []  # every problem of every entry, one line each
    for n, entry in enumerate(entries):
        start = headers[n] if n < len(headers) and len(headers) == len(entries) else None
        end = headers[n + 1] - 1 if start is not None and n + 1 < len(headers) else len(lines)
        name = entry.get(label_key) if isinstance(entry, dict) else None
        label = f'{table} "{name}"' if isinstance(name, str) else f"{table} #{n + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where(filename, start)}{label}: must be a table")
            continue
        try:
            item = model.model_validate(entry)
        except ValidationError as e:
            errors = [((key_line(lines, str(err["loc"][0]), start, end, table)
                        if err["loc"] else None) or start, err) for err in e.errors()]
            # In file order; but a misspelt key also makes its correct spelling "missing",
            # so the typo comes first.
            errors.sort(key=lambda item: (item[1]["type"] != "extra_forbidden", item[0] or 0))
            meant = {_meant(str(err["loc"][0]), entry, model) for _, err in errors
                     if err["type"] == "extra_forbidden"}
            errors = [(line, err) for line, err in errors if not (
                err["type"] == "missing" and err["loc"] and err["loc"][0] in meant)]
            problems += [f"{where(filename, line)}{label}: {_describe(err, entry, model)}"
                         for line, err in errors]
            continue
        out.append((item, key_line(lines, label_key, start, end, table) or start))
    if problems:
        raise error("\n".join(problems))
    return out


def load_toml(text: str, filename: str, error: type[Exception]) -> dict[str, Any]:
    """The text parsed; ``error`` naming the line and column of a syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's TOMLDecodeError has no lineno attribute: the position is in the text.
        message = str(e)
        match = _TOML_POSITION.search(message)
        if match:
            raise error(f"{filename}:{match[1]}: invalid TOML: "
                        f"{message[:match.start()]} (column {match[2]})") from None
        raise error(f"{filename}: invalid TOML: {message}") from None


def where(filename: str, line: int | None) -> str:
    return f"{filename}:{line}: " if line else f"{filename}: "


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _unset(entry: Mapping[str, Any], model: type[BaseModel]) -> list[str]:
    """The model's keys (as written in the file) that ``entry`` does not set."""
    return [info.alias or k for k, info in model.model_fields.items()
            if (info.alias or k) not in entry]


def _meant(word: str, entry: Mapping[str, Any], model: type[BaseModel]) -> str | None:
    """The unset key a misspelt ``word`` most likely meant (its "missing" is the typo)."""
    close = difflib.get_close_matches(word, _unset(entry, model), n=1, cutoff=0.6)
    return close[0] if close else None


def _describe(error: Mapping[str, Any], entry: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = error["loc"]
    path = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key{_did_you_mean(str(loc[0]), _unset(entry, model))}"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}" if path else message


def key_line(lines: list[str], key: str, start: int | None, end: int,
              table: str) -> int | None:
    """The line (1-based) of ``key = ...`` (or ``key.x = ...``, ``[table.key]``) in a
    section."""
    if start is None:
        return None
    pattern = re.compile(
        rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*[=.]"""
        rf"""|^\s*\[\s*{re.escape(table)}\.{re.escape(key)}\s*\]""")
    for number in range(start, end + 1):
        if pattern.match(lines[number - 1]):
            return number
    return None


def _table_line(lines: list[str], key: str) -> int | None:
    pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(key)}\s*[\].]")
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return number
    return None
