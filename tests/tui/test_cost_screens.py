"""Cost where it matters: the trace list's column, the trace header, the span detail (with
where the price came from) and the dashboard's spend line; a model with no price says so,
never $0."""

from __future__ import annotations

from agenttop.analysis.cost import database_version
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.traces import TracesScreen
from tests.tui.conftest import SIZE, screen_text
from tests.tui.fixtures import hex_span, hex_trace, span, traces_request, write
from tests.tui.test_alerts_security import app_for, open_screen
from tests.tui.test_genai_content import shown_detail

LLM = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
# gpt-4o-mini: 800 uncached x $0.15 + 200 cached x $0.075 + 100 out x $0.60, per 1M tokens.
PRICED = {**LLM, "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
          "gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.usage.output_tokens": 100}
UNPRICED = {**LLM, "gen_ai.request.model": "my-finetune", "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5}


def build(db) -> None:
    write(db, ("traces", traces_request([("svc", [
        span("p", "invoke_agent priced", start_ms=-20_000),
        span("p", "chat gpt-4o-mini", parent="invoke_agent priced", start_ms=-19_000, kind=3,
             attributes=PRICED),
        span("p", "chat my-finetune", parent="invoke_agent priced", start_ms=-18_000,
             kind=3, attributes=UNPRICED),
        span("u", "invoke_agent unpriced", start_ms=-10_000),
        span("u", "chat my-finetune", parent="invoke_agent unpriced", start_ms=-9_000,
             kind=3, attributes=UNPRICED),
    ])])))


async def test_costs_show_in_the_list_the_header_and_the_detail(tmp_path):
    db = tmp_path / "agenttop.db"
    build(db)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_screen(pilot, "2", TracesScreen)
        listed = [line for line in screen_text(app).splitlines() if "invoke_agent" in line]
        assert any("$0.0002*" in line for line in listed)  # priced, one call unpriced
        assert any("no price" in line for line in listed)

        text = await shown_detail(pilot, hex_trace("p"), hex_span("p", "chat gpt-4o-mini"))
        assert f"cost $0.0002 (price: {database_version()})" in " ".join(text.split())
        header = screen_text(app)
        assert "$0.0002  (1 call with no price)  1,010 in / 105 out tokens" in header
        await pilot.press("escape")
        text = await shown_detail(pilot, hex_trace("u"), hex_span("u", "chat my-finetune"))
        assert "no price for this model (add it with --prices FILE)" in " ".join(text.split())
        assert "  no price  " in screen_text(app)


async def test_the_dashboard_shows_spend_and_the_costliest_models(tmp_path):
    db = tmp_path / "agenttop.db"
    build(db)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_screen(pilot, "1", DashboardScreen)
        line = next(x for x in screen_text(app).splitlines() if x.strip().startswith("spend"))
    assert "spend  $0.0002+? in 5m" in line
    assert "gpt-4o-mini $0.0002" in line and "my-finetune no price (2 calls)" in line
