"""The operators' dashboard in a real browser (Debian's chromium driven by Playwright): counts,
the fleet table, live updates over SSE, and the wake action. Keeps a screenshot in docs/."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.connected.conftest import Stack
from tests.connected.helpers import ago, eventually, post_webhook, status_of, token, unique, webhook

pytestmark = pytest.mark.connected

ROOT = Path(__file__).resolve().parents[2]


def chromium() -> str:
    """`make test` installs it (infra/local/chromium.sh); a missing browser is a failure."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if path is None:
        script = ROOT / "infra" / "local" / "chromium.sh"
        path = subprocess.run([script], check=True, capture_output=True, text=True).stdout.strip()
    return path


class Opened(NamedTuple):
    page: Page
    errors: list[str]  # the page's uncaught errors


@contextlib.asynccontextmanager
async def dashboard(stack: Stack, admin: str, height: int = 800) -> AsyncIterator[Opened]:
    """The dashboard open in Chromium, signed in with the admin token `admin`; the page's
    uncaught errors are collected."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{stack.status_api.url}/dashboard/#token={admin}")
            yield Opened(page, errors)
        finally:
            await browser.close()


async def test_the_dashboard_shows_the_fleet_live_and_wakes_a_sandbox(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, running, paused = unique("dash"), unique("sbx-run"), unique("sbx-paused")
    other = unique("dash")
    await post_webhook(client, stack, webhook("created", running, project, seconds=ago(5)))
    await post_webhook(client, stack, webhook("created", paused, other, seconds=ago(60)))
    await post_webhook(client, stack, webhook("paused", paused, other, seconds=ago(30)))

    async def ready() -> bool:
        a, b = await status_of(client, stack, project), await status_of(client, stack, other)
        return a.status_code == 200 and b.status_code == 200 and b.json()["status"] == "PAUSED"

    await eventually(ready)
    admin = token(stack, admin=True)["Authorization"].removeprefix("Bearer ")
    async with dashboard(stack, admin) as (page, errors):
        row = page.locator(f'tr[data-id="{running}"]')
        await expect(row.locator(".status")).to_have_text("RUNNING")
        await expect(row.locator(".project")).to_have_text(project)
        await expect(row.locator(".source")).to_have_text("e2b-webhook")
        await expect(page.locator("#live")).to_have_text("live")
        running_count = int(await page.locator('li[data-status="RUNNING"] .n').inner_text())
        assert running_count >= 1
        # Live: E2B pauses the running sandbox; the row and the counts follow, no reload.
        await post_webhook(client, stack, webhook("paused", running, project, seconds=ago(0)))
        await expect(row.locator(".status")).to_have_text("PAUSED", timeout=5000)
        await expect(page.locator('li[data-status="RUNNING"] .n')).to_have_text(
            str(running_count - 1)
        )
        await expect(page.locator("#events")).to_contain_text(f"{running} → PAUSED")
        # The wake action: STARTING arrives over the stream.
        other_row = page.locator(f'tr[data-id="{paused}"]')
        await other_row.locator("button", has_text="wake").click()
        await expect(other_row.locator(".status")).to_have_text("STARTING", timeout=5000)
        # History of a sandbox on click.
        await other_row.locator(".id").click()
        await expect(page.locator("#history")).to_contain_text("sandbox.wake.requested")
        await page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
        assert errors == []


async def test_the_dashboard_shows_a_projects_policy_and_an_admin_edits_it(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """Issue 17, item 6: the policy in force with who decided each value; a refused edit names
    the field; a saved one applies at once (the row's time to pause follows over the stream)."""
    project, sandbox = unique("dash-policy"), unique("sbx")
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=ago(1)))
    await eventually(lambda: _shown(client, stack, project))
    admin = token(stack, admin=True)["Authorization"].removeprefix("Bearer ")
    async with dashboard(stack, admin, height=900) as (page, errors):
        row = page.locator(f'tr[data-id="{sandbox}"]')
        await expect(row.locator(".status")).to_have_text("RUNNING")
        await expect(row.locator(".ttp")).to_contain_text("m ")  # about 3 minutes
        await row.locator(".project").click()
        idle = page.locator('#policy-effective tr[data-field="idleTimeoutSeconds"]')
        await expect(idle.locator(".value")).to_have_text("180")
        await expect(idle.locator(".source")).to_have_text("setting")
        await expect(page.locator("#policy-level")).to_have_text(project)
        # A refused value names the field at fault.
        await page.locator("#policy-json").fill('{"idleTimeoutSeconds": 5}')
        await page.locator("#policy-edit button").click()
        await expect(page.locator("#policy-status")).to_contain_text("refused: idleTimeoutSeconds")
        await page.locator("#policy-json").fill('{"idleTimeoutSeconds": 7200}')
        await page.locator("#policy-edit button").click()
        await expect(page.locator("#policy-status")).to_have_text("applied", timeout=10_000)
        await expect(idle.locator(".value")).to_have_text("7200")
        await expect(idle.locator(".source")).to_have_text("project")
        # Applied at once: the row's deadline moved (an hour and more to go).
        await expect(row.locator(".ttp")).to_contain_text("1h 59m", timeout=5000)
        assert errors == []


async def _shown(client: httpx.AsyncClient, stack: Stack, project: str) -> bool:
    return (await status_of(client, stack, project)).status_code == 200


async def test_the_dashboard_stops_following_when_its_token_expires(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    admin = token(stack, admin=True, ttl=4)["Authorization"].removeprefix("Bearer ")
    async with dashboard(stack, admin) as (page, _):
        await expect(page.locator("#live")).to_have_text("live")
        # The stream ends with `reauthenticate`: no retry loop against a dead token.
        await expect(page.locator("#live")).to_have_text("token expired", timeout=8000)
        await expect(page.locator("#error")).to_contain_text("token expired")


async def test_the_dashboard_forbids_framing_and_foreign_content(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    for path in ("/dashboard/", "/dashboard/dashboard.js"):
        r = await client.get(f"{stack.status_api.url}{path}")
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert "default-src 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
