"""What a model call cost, from its provider, model, token counts and time.

Prices come from a user's prices file first (``--prices FILE``, read by
``agenttop.analysis.prices``: self-hosted, fine-tuned or negotiated models), then from
``genai-prices``, the price database the Pydantic team keeps: 2,000+ models of ~50
providers, with the dates prices changed, bundled in the package (no network) and pinned
to one release, so the same file gives the same figures next month. A call is priced at
the prices of the day it started. A model neither knows
has no price: never $0.

Token counts follow the OTel GenAI conventions: ``input_tokens`` includes cached input
(``cache_read``, ``cache_write``), ``output_tokens`` includes reasoning. A prices file may
price reasoning apart; the database prices it as output.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

DATABASE = "genai-prices"
_PER_MILLION = 1e-6


class Cost(NamedTuple):
    usd: float
    source: str  # "genai-prices 0.2.3" or "prices.toml:12"


@dataclass(frozen=True, slots=True)
class PriceRule:
    """A user's price for the models matching ``model`` (and ``provider``), per million
    tokens, while ``valid_from <= day < valid_until``."""

    provider: str | None
    model: str
    per_million: tuple[float, float, float | None, float | None, float | None]
    valid_from: date | None
    valid_until: date | None
    source: str  # "FILE:LINE"

    def matches(self, provider: str | None, model: str, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        if self.valid_until is not None and day >= self.valid_until:
            return False
        if self.provider is not None and not fnmatch.fnmatchcase((provider or "").lower(),
                                                                 self.provider.lower()):
            return False
        return fnmatch.fnmatchcase(model.lower(), self.model.lower())

    def cost(self, tokens: Tokens) -> float:
        inp, out, cache_read, cache_write, reasoning = self.per_million
        uncached = max(tokens.input - tokens.cache_read - tokens.cache_write, 0)
        total = uncached * inp + tokens.cache_read * (inp if cache_read is None else cache_read)
        total += tokens.cache_write * (inp if cache_write is None else cache_write)
        if reasoning is None:
            total += tokens.output * out
        else:
            thought = min(tokens.reasoning, tokens.output)
            total += (tokens.output - thought) * out + thought * reasoning
        return total * _PER_MILLION


class Tokens(NamedTuple):
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @classmethod
    def reported(cls, input: int, output: int, cache_read: int, cache_write: int,  # noqa: A002
                 reasoning: int) -> Tokens:
        """Counts as a client reported them, made consistent: none negative, cached input
        within the input, reasoning within the output."""
        input, output = max(input, 0), max(output, 0)  # noqa: A001
        cache_read = min(max(cache_read, 0), input)
        cache_write = min(max(cache_write, 0), input - cache_read)
        return cls(input, output, cache_read, cache_write, min(max(reasoning, 0), output))


@lru_cache(maxsize=1)
def database_version() -> str:
    """The price database's name and version, as each of its prices says it came from."""
    return f"{DATABASE} {importlib.metadata.version(DATABASE)}"


class PriceBook:
    """Prices a call: the user's rules in file order, then the database (``database``
    False: the rules alone). Picklable, for the receiver's decoding workers; the database
    is loaded on first use (~0.4 s) and its lookups cached."""

    def __init__(self, rules: tuple[PriceRule, ...] = (), *, database: bool = True) -> None:
        self.rules = rules
        self.database = database

    def cost(self, provider: str | None, model: str, tokens: Tokens, at_ns: int) -> Cost | None:
        """The call's cost, or None when no price is known for its model."""
        day = datetime.fromtimestamp(at_ns / 1e9, UTC).date()
        for rule in self.rules:
            if rule.matches(provider, model, day):
                return Cost(rule.cost(tokens), rule.source)
        if not self.database:
            return None
        try:
            return _database_cost(provider, model, tokens, day)
        except Exception:  # noqa: BLE001 - a price is never worth a rejected request
            log.debug("no price for %r: the price database failed on it", model,
                      exc_info=True)
            return None


DEFAULT_PRICES = PriceBook()


# --- the database -------------------------------------------------------------------------
# genai-prices' own calc_price builds a Usage and sums Decimals (~85 us a call); a call's
# unit prices per day and model are cached here and summed in floats, unless a tier (a
# higher price above so many input tokens) applies, where its exact calculation is used.

_FIELDS = (("input_mtok", "input"), ("output_mtok", "output"),
           ("cache_read_mtok", "cache_read"), ("cache_write_mtok", "cache_write"))


@lru_cache(maxsize=4096)
def _unit_prices(provider: str | None, model: str, day: date) -> tuple[Any, ...] | None:
    """(ModelPrice, {kind: USD per token}, lowest tier start or None); None: unknown."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    try:
        _, info = snapshot.find_provider_model(model, None, provider, None)
    except LookupError:
        if provider is None:
            return None
        try:  # a provider name the database spells differently (gen_ai.system values)
            _, info = snapshot.find_provider_model(model, None, None, None)
        except LookupError:
            return None
    prices = info.get_prices(datetime(day.year, day.month, day.day, tzinfo=UTC))
    unit: dict[str, float] = {}
    tier: int | None = None
    for field, kind in _FIELDS:
        value = getattr(prices, field, None)
        if value is None:
            continue
        tiers = getattr(value, "tiers", None)
        if tiers is not None:
            starts = [t.start for t in tiers]
            tier = min([tier, *starts]) if tier is not None else min(starts)
            value = value.base
        unit[kind] = float(value) * _PER_MILLION
    if "input" not in unit and "output" not in unit:
        return None  # priced per request or per second only: not a token price
    return prices, unit, tier


def _database_cost(provider: str | None, model: str, tokens: Tokens, day: date) -> Cost | None:
    found = _unit_prices(provider.lower() if provider else None, model, day)
    if found is None:
        return None
    prices, unit, tier = found
    if tier is not None and tokens.input >= tier:
        from genai_prices import Usage

        exact = prices.calc_price(Usage(
            input_tokens=tokens.input, output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read, cache_write_tokens=tokens.cache_write))
        return Cost(float(exact["total_price"]), database_version())
    inp = unit.get("input", 0.0)
    uncached = max(tokens.input - tokens.cache_read - tokens.cache_write, 0)
    usd = (uncached * inp + tokens.cache_read * unit.get("cache_read", inp)
           + tokens.cache_write * unit.get("cache_write", inp)
           + tokens.output * unit.get("output", 0.0))
    return Cost(usd, database_version())
