"""The user's prices file (``--prices FILE``): TOML ``[[price]]`` tables, each a provider and
model (globs), USD per million tokens of each kind, and optional dates, validated so that a
problem names the file, line, entry and field.

Apart from ``agenttop.analysis.cost`` so that the receiver's decoding workers, which price
calls, do not load the validation library for a file they never read.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agenttop.analysis.cost import DEFAULT_PRICES, PriceBook, PriceRule
from agenttop.analysis.tomlfile import parse_tables, read_text


class PricesError(Exception):
    """A prices file cannot be used; the message names the file, line, entry and field."""


class _Entry(BaseModel):
    """One ``[[price]]`` table: USD per million tokens of each kind."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)

    provider: str | None = None  # a glob; any provider when absent
    model: str  # a glob: "ft:gpt-4o-mini:*", "llama-3*"
    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]
    cache_read: Annotated[float | None, Field(ge=0)] = None  # default: the input price
    cache_write: Annotated[float | None, Field(ge=0)] = None  # default: the input price
    reasoning: Annotated[float | None, Field(ge=0)] = None  # default: the output price
    valid_from: Annotated[date | None, Field(alias="from")] = None
    valid_until: Annotated[date | None, Field(alias="until")] = None  # exclusive

    @field_validator("valid_until")
    @classmethod
    def _after_from(cls, until: date | None, info: ValidationInfo) -> date | None:
        since = info.data.get("valid_from")
        if until is not None and since is not None and until <= since:
            raise ValueError("must be after from")
        return until


def load_prices(path: Path) -> tuple[PriceRule, ...]:
    """Read and validate a prices file; ``PricesError`` names the file, line and field."""
    text = read_text(path, PricesError, "prices file")
    return parse_prices(text, str(path))


def load_price_book(path: Path | None) -> PriceBook:
    """The prices file's rules before the database (``None``: the database alone)."""
    return PriceBook(load_prices(path)) if path is not None else DEFAULT_PRICES


def parse_prices(text: str, filename: str = "prices.toml") -> tuple[PriceRule, ...]:
    return tuple(
        PriceRule(entry.provider, entry.model,
                  (entry.input, entry.output, entry.cache_read, entry.cache_write,
                   entry.reasoning),
                  entry.valid_from, entry.valid_until, f"{Path(filename).name}:{line}")
        for entry, line in parse_tables(text, filename, "price", _Entry, PricesError,
                                        label_key="model"))
