"""The agents screen: agents, tools and models over a window, sorted by any column, the
selected agent's calls, and enter opening exactly the traces a row covers."""

from __future__ import annotations

from pathlib import Path

from agenttop.tui.screens.agents import AgentsScreen, AgentTable, ModelTable, ToolTable
from agenttop.tui.screens.traces import TracesScreen
from tests.test_calls import planner_trace
from tests.tui.conftest import SIZE, screen_text, wait_for
from tests.tui.fixtures import CLIENT, MINUTE_NS, NOW, hex_trace, span, traces_request, write
from tests.tui.test_alerts_security import app_for, open_screen

HALF_HOUR_AGO = NOW - 30 * MINUTE_NS


def build(db: Path) -> None:
    """Two planner traces now (planner → researcher, both calling search and a model);
    half an hour ago one failed run of a billing agent calling refund and gpt-4o-mini."""
    billing = [
        span("t3", "invoke_agent billing", key="root", base_ns=HALF_HOUR_AGO, duration_ms=400,
             error="refund refused", attributes={"gen_ai.operation.name": "invoke_agent",
                                                 "gen_ai.agent.name": "billing"}),
        span("t3", "chat gpt-4o-mini", parent="root", base_ns=HALF_HOUR_AGO, start_ms=1,
             duration_ms=100, kind=CLIENT, attributes={
                 "gen_ai.request.model": "gpt-4o-mini", "gen_ai.provider.name": "openai",
                 "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}),
        span("t3", "execute_tool refund", parent="root", base_ns=HALF_HOUR_AGO, start_ms=200,
             duration_ms=100, error="refused", attributes={"gen_ai.tool.name": "refund"}),
    ]
    spans = [*planner_trace("t1").values(), *planner_trace("t2").values(), *billing]
    write(db, ("traces", traces_request([("svc", spans)])))


def graph(screen: AgentsScreen) -> list[str]:
    """The calls pane's labels, indented by depth."""
    out: list[str] = []

    def walk(node, depth: int) -> None:
        out.append("  " * depth + node.label.plain)
        for child in node.children:
            walk(child, depth + 1)

    walk(screen.query_one("#agent-calls").root, 0)
    return out


def names(table) -> list[str]:
    return [table.items[key].values["name"] for key in table.keys]


async def test_window_sort_and_the_calls_of_the_selected_agent(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "8", AgentsScreen)
        agents, tools = screen.query_one(AgentTable), screen.query_one(ToolTable)
        await wait_for(pilot, lambda: agents.row_count == 2, what="the 5m window's agents")
        assert names(agents) == ["planner", "researcher"]  # equal runs: by name
        assert names(tools) == ["search"]
        assert graph(screen) == [
            "planner",
            "  agent researcher ×2",
            "    tool search ×2",
            # 2 x (100 input tokens at $2.50 and 10 output at $10 per million)
            "    model gpt-4o ×2 100% failed $0.0007",
            "  tool search ×2",
            "  model gpt-4o-mini ×2 <$0.0001",
        ]
        # Half an hour back, the billing agent's failed run.
        for _ in range(2):  # 5m → 15m → 1h
            await pilot.press("w")
        await wait_for(pilot, lambda: agents.row_count == 3, what="the hour's agents")
        assert screen.window_s == 3600
        assert names(tools) == ["search", "refund"]
        agents.focus()
        await pilot.press("s")  # runs → failure rate, biggest first
        assert agents.sort_column == "fail" and names(agents)[0] == "billing"
        assert "Fail▼" in screen_text(app)
        await pilot.press("S")
        assert names(agents) == ["planner", "researcher", "billing"]
        assert "Fail▲" in screen_text(app)
        await pilot.press("s")  # p50, slowest first
        assert names(agents) == ["planner", "researcher", "billing"]
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: screen.graph_of == "billing", what="billing's calls")
        assert graph(screen) == ["billing", "  tool refund ×1 100% failed",
                                 "  model gpt-4o-mini ×1 <$0.0001"]


async def open_row(pilot, screen, table_cls, name: str) -> TracesScreen:
    table = screen.query_one(table_cls)
    table.focus()
    table.move_cursor(row=names(table).index(name))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, TracesScreen), what="traces")
    traces = pilot.app.screen
    await wait_for(pilot, lambda: traces.table.row_count > 0, what="the row's traces")
    return traces


async def test_enter_opens_exactly_the_traces_a_row_covers(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    app = app_for(db)
    now_only = {hex_trace("t1"), hex_trace("t2")}
    async with app.run_test(size=SIZE) as pilot:
        for table_cls, name, query, window_presses, expected in (
            (AgentTable, "researcher", "agent:researcher", 0, now_only),
            (ToolTable, "refund", "tool:refund", 2, {hex_trace("t3")}),
            (ModelTable, "openai/gpt-4o-mini", "model:gpt-4o-mini", 2,
             {*now_only, hex_trace("t3")}),
            # In the last 5 minutes only: the billing run is older.
            (ModelTable, "openai/gpt-4o-mini", "model:gpt-4o-mini", 0, now_only),
        ):
            screen = await open_screen(pilot, "8", AgentsScreen)
            while screen.window_s != 300:
                await pilot.press("w")
            for _ in range(window_presses):
                await pilot.press("w")
            await wait_for(pilot, lambda s=screen, t=table_cls, n=name: n in names(s.query_one(t)),
                           what=name)
            traces = await open_row(pilot, screen, table_cls, name)
            assert traces.query_text == query
            await wait_for(pilot, lambda t=traces, e=expected: set(t.table.keys) == e,
                           what=f"exactly the traces of {query}")
