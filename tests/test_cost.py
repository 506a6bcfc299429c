"""What model calls cost: hand-computed figures for every token kind, the user's prices
over the database, a model with no price, prices that changed between two dates, a bad
prices file named by line and field, and costs stored through the real writer."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from agenttop.analysis.cost import PriceBook, Tokens, database_version
from agenttop.analysis.prices import PricesError, load_prices, parse_prices
from agenttop.cli import main
from agenttop.store import open_reader
from agenttop.store.queries import get_trace
from tests.tui.fixtures import hex_trace, span, traces_request, write


def ns(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1e9)


JUNE = ns("2025-06-01")
PRICES = """\
# negotiated
[[price]]
provider = "openai"
model = "gpt-4o-mini"
input = 2.0
output = 8.0
cache_read = 0.5
cache_write = 2.5
reasoning = 10.0

[[price]]
model = "llama-3*"
input = 0.1
output = 0.2
until = 2025-07-01

[[price]]
model = "llama-3*"
input = 0.3
output = 0.6
from = 2025-07-01
"""


def test_every_token_kind_at_the_users_prices():
    book = PriceBook(parse_prices(PRICES, "prices.toml"))
    # 1M input of which 200k cache reads and 100k cache writes; 500k output of which 100k
    # reasoning: 700k x $2 + 200k x $0.5 + 100k x $2.5 + 400k x $8 + 100k x $10, per 1M.
    tokens = Tokens(input=1_000_000, output=500_000, cache_read=200_000, cache_write=100_000,
                    reasoning=100_000)
    cost = book.cost("openai", "gpt-4o-mini", tokens, JUNE)
    assert cost.usd == pytest.approx(1.4 + 0.1 + 0.25 + 3.2 + 1.0)
    assert cost.source == "prices.toml:4"  # the line of its model


def test_unset_kinds_fall_back_to_input_and_output_prices():
    book = PriceBook(parse_prices(PRICES, "prices.toml"), database=False)
    tokens = Tokens(input=1_000_000, output=1_000_000, cache_read=500_000, reasoning=300_000)
    assert book.cost(None, "llama-3.1-8b", tokens, JUNE).usd == pytest.approx(0.1 + 0.2)


def test_the_database_prices_each_kind_as_published():
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per 1M tokens.
    cost = PriceBook().cost("openai", "gpt-4o-mini",
                            Tokens(input=1000, output=100, cache_read=200), JUNE)
    assert cost.usd == pytest.approx(800 * 0.15e-6 + 200 * 0.075e-6 + 100 * 0.6e-6)
    assert cost.source == database_version() and cost.source.startswith("genai-prices ")


def test_the_users_price_overrides_the_database():
    book = PriceBook(parse_prices(PRICES, "prices.toml"))
    cost = book.cost("openai", "gpt-4o-mini", Tokens(input=1_000_000), JUNE)
    assert cost.usd == pytest.approx(2.0) and cost.source == "prices.toml:4"
    other = book.cost("azure", "gpt-4o-mini", Tokens(input=1_000_000), JUNE)
    assert other.source.startswith("genai-prices")  # the rule names openai only


def test_a_model_nobody_prices_has_no_price():
    assert PriceBook().cost("openai", "my-finetune-xyz", Tokens(input=10, output=5),
                            JUNE) is None


def test_a_price_that_changed_between_two_dates():
    book = PriceBook(parse_prices(PRICES, "prices.toml"))
    tokens = Tokens(input=1_000_000, output=1_000_000)
    assert book.cost(None, "llama-3-70b", tokens, ns("2025-06-30")).usd == pytest.approx(0.3)
    assert book.cost(None, "llama-3-70b", tokens, ns("2025-07-01")).usd == pytest.approx(0.9)
    # In the database: claude-sonnet-4-6 had a higher price above 200k input tokens (the
    # whole request at $6 / $22.5 per 1M) until 2026-03-13, one flat price ($3 / $15) since.
    big = Tokens(input=300_000, output=1000)
    before = PriceBook().cost("anthropic", "claude-sonnet-4-6", big, ns("2026-03-01"))
    after = PriceBook().cost("anthropic", "claude-sonnet-4-6", big, ns("2026-04-01"))
    assert before.usd == pytest.approx(300_000 * 6e-6 + 1000 * 22.5e-6)
    assert after.usd == pytest.approx(300_000 * 3e-6 + 1000 * 15e-6)


def test_a_price_book_survives_pickling_for_the_decoders():
    book = pickle.loads(pickle.dumps(PriceBook(parse_prices(PRICES, "p.toml"))))
    assert book.cost(None, "llama-3", Tokens(input=1_000_000), JUNE).source == "p.toml:12"


@pytest.mark.parametrize(("text", "message"), [
    ("[[price]]\nmodel = 'x'\ninput = 1\noutput = 1\nouptut = 2\n",
     'p.toml:5: price "x": ouptut: unknown key'),
    ("[[price]]\nmodel = 'x'\ninput = -1\noutput = 1\n",
     'p.toml:3: price "x": input: Input should be greater than or equal to 0'),
    ("[[price]]\ninput = 1\noutput = 1\n", "p.toml:1: price #1: model: required key is missing"),
    ("[[price]]\nmodel = 'x'\ninput = 1\noutput = 1\nfrom = 2025-02-01\nuntil = 2025-01-01\n",
     'p.toml:6: price "x": until: must be after from'),
    ("[[price]]\nmodel = 'x'\ninput = '1'\noutput = 1\n",
     'p.toml:3: price "x": input: Input should be a valid number'),
    ("[prices]\nmodel = 'x'\n", "p.toml:1: unknown top-level key 'prices' (did you mean"),
    ("[[price]\n", "p.toml:1: invalid TOML"),
])
def test_a_bad_prices_file_names_the_line_and_the_field(text, message):
    with pytest.raises(PricesError) as raised:
        parse_prices(text, "p.toml")
    assert str(raised.value).startswith(message), str(raised.value)


def test_serve_refuses_a_bad_prices_file_before_it_starts(tmp_path):
    bad = tmp_path / "prices.toml"
    bad.write_text("[[price]]\nmodel = 'x'\ninput = 1\n")
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "a.db"),
                                       "--prices", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:1: price \"x\": output: required key is missing" in result.output
    assert not (tmp_path / "a.db").exists()
    with pytest.raises(PricesError, match="cannot read prices file"):
        load_prices(tmp_path / "missing.toml")


def test_costs_are_stored_with_their_calls_traces_and_minutes(tmp_path: Path):
    db = tmp_path / "a.db"
    llm = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    write(db, ("traces", traces_request([("svc", [
        span("t", "invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"}),
        span("t", "chat a", parent="invoke_agent", kind=3, attributes={
            **llm, "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.usage.output_tokens": 100}),
        span("t", "chat b", parent="invoke_agent", kind=3, start_ms=2, attributes={
            **llm, "gen_ai.request.model": "my-finetune", "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5}),
        span("u", "chat c", kind=3, attributes={
            **llm, "gen_ai.request.model": "my-finetune", "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5}),
    ])])))
    expected = 800 * 0.15e-6 + 200 * 0.075e-6 + 100 * 0.6e-6
    conn = open_reader(db)
    try:
        priced = get_trace(conn, hex_trace("t"))
        assert priced.cost_usd == pytest.approx(expected)
        assert priced.unpriced == 1 and (priced.input_tokens, priced.output_tokens) == (1010, 105)
        unpriced = get_trace(conn, hex_trace("u"))
        assert unpriced.cost_usd is None and unpriced.unpriced == 1  # "no price", not $0
        minutes = {row[0]: row[1:] for row in conn.execute(
            "SELECT model, calls, cost_usd, priced, unpriced, cache_read_tokens "
            "FROM model_minutes")}
        assert minutes["gpt-4o-mini"][:4] == (1, pytest.approx(expected), 1, 0)
        assert minutes["gpt-4o-mini"][4] == 200
        assert minutes["my-finetune"][:4] == (2, 0.0, 0, 2)
        # One agent run: the lone chat's root span is a model call, not a run.
        assert conn.execute("SELECT sum(runs) FROM layer_minutes").fetchone()[0] == 1
    finally:
        conn.close()


def test_inconsistent_counts_are_priced_as_they_can_be_and_never_fail_ingest(tmp_path):
    """Cached input over the input (which the database's own calculation refuses), negative
    counts, a model name no pattern expects: the request is stored whatever the price."""
    assert Tokens.reported(300_000, -5, 400_000, 10, 7) == Tokens(300_000, 0, 300_000, 0, 0)
    db = tmp_path / "a.db"
    llm = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic"}
    write(db, ("traces", traces_request([("svc", [
        span("t", "chat big", kind=3, attributes={
            **llm, "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 300_000,
            "gen_ai.usage.cache_read.input_tokens": 400_000,
            "gen_ai.usage.output_tokens": 10}),
        span("t", "chat odd", kind=3, start_ms=1, attributes={
            **llm, "gen_ai.request.model": "claude(*[", "gen_ai.usage.input_tokens": -3,
            "gen_ai.usage.output_tokens": 5}),
    ])])))
    conn = open_reader(db)
    try:
        costs = dict(conn.execute("SELECT name, cost_usd FROM spans"))
    finally:
        conn.close()
    # All 300k input read from cache, above the 200k tier: $0.6 per 1M; output $22.5.
    assert costs["chat big"] == pytest.approx(300_000 * 0.6e-6 + 10 * 22.5e-6)
    assert costs["chat odd"] is None
