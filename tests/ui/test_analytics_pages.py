"""The analytics pages in a real browser: a template's graph coloured by time spent against each state's
expectation, its success trend, duration histogram and bottlenecks, on a fixed data set; the agents'
cost per day against the API's figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from core.process.contracts import StateNode
from tests.support.analytics import write_instances
from tests.support.api import Api
from tests.support.process import node, template, unique_code
from tests.ui.test_console import shot, sign_in

STATES = [
    node(0, [], [1], name="Intake", avg_duration_days=1),
    node(1, [0], [2, 3], name="Review", avg_duration_days=2),
    node(2, [1], [], name="Done", terminal_flag=True, success=True),
    node(3, [1], [], name="Rejected", terminal_flag=True, success=False),
]
# Intake takes 12 h (half its day: green); Review takes 5 days (2.5 times its 2: red).
SCRIPTS: list[tuple[float, list[tuple[int, float]], float | None]] = [
    (0, [(0, 0), (1, 12), (2, 132)], None),
    (30, [(0, 0), (1, 12), (2, 132)], None),
    (60, [(0, 0), (1, 12), (3, 132)], None),
]


async def test_template_and_agent_analytics_pages(
    api: Api, engine: AsyncEngine, browser: Browser, console: str
) -> None:
    code = unique_code("CHARTS")
    created = await api.request("POST", "/api/v1/workflow-template", json=template(code, STATES, name="Charted"))
    assert created.status_code == 201, created.text
    head = created.json()
    graph = [StateNode.model_validate(s) for s in head["workflow_graph"]["states"]]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    await write_instances(engine, code, head["id"], graph, SCRIPTS, t0)

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "viewer")
    await page.click("text=Analytics")
    await page.click(f"[data-template={code}]")
    await expect(page).to_have_url(f"{console}/ui/analytics/templates/{code}")
    await expect(page.locator("[data-summary]")).to_contain_text("3 started")
    await expect(page.locator("[data-success-rate]")).to_contain_text("66.67% success")
    await expect(page.locator("g[data-state='0']")).to_have_attribute("data-fill", "#d1fadf")  # within
    await expect(page.locator("g[data-state='1']")).to_have_attribute("data-fill", "#fee4e2")  # over
    await expect(page.locator("g[data-state='1']")).to_contain_text("5.0 d / 2 d")
    await expect(page.locator("[data-bottleneck='1']")).to_contain_text("2.5\u00d7")
    await expect(page.locator("[data-bottleneck]")).to_have_count(1)
    # Finishes on 3 different days: 3 points; the histogram's 12 bins.
    await expect(page.locator("svg[data-chart='Success rate per day'] [data-point]")).to_have_count(3)
    await expect(page.locator("svg[data-chart='Duration histogram'] [data-bar]")).to_have_count(12)
    await shot(page, "analytics-template")

    await page.goto(f"{console}/ui/analytics/agents")
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    figures = (await api.request("GET", "/api/v1/analytics/agents", params={"from": since})).json()
    await expect(page.locator("[data-total-cost]")).to_have_text(f"${figures['totals']['cost_usd']:.4f}")
    await expect(page.locator("svg[data-chart='Cost per day'] [data-bar]")).to_have_count(len(figures["by_day"]))
    await expect(page.locator("[data-by-agent] tr")).to_have_count(len(figures["by_agent_model"]) + 1)
    await shot(page, "analytics-agents")

    missing = await page.goto(f"{console}/ui/analytics/templates/NO_SUCH_CODE")
    assert missing is not None and missing.status == 404
    await context.close()
