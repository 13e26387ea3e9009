"""The central station in a real browser (Debian's Chromium driven by Playwright): an alarm appears,
escalates and is acknowledged; a library release reaches a ward; a user without the role is refused;
a pharmacist uploads and releases a library from the page; every page passes axe-core's accessibility
rules. Screenshots go to out/screenshots (docs/figures with OPENINFUSION_SCREENSHOTS=docs/figures)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from hospitalkit import ROOT, example_library, make_system, run
from openinfusion.agent.ward import ward_release
from openinfusion.pump.statechart import ChannelState
from openinfusion.server.broker import free_port
from openinfusion.web.system import LocalSystem, Served, build_app
from web.browserkit import shot

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".node/node_modules/axe-core/axe.min.js"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/bootstrap.sh)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@dataclasses.dataclass
class Live:
    system: LocalSystem
    url: str


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    system = make_system(tmp_path / "data", pumps=4, escalate_after_s=3.0)
    served = Served(build_app(system.hospital, manage=False), "127.0.0.1", free_port())
    served.start()
    run(system, 30)
    yield Live(system, f"http://127.0.0.1:{served.server.config.port}")
    served.stop()
    system.hospital.stop()


def login(browser: Browser, live: Live, name: str, *, bypass_csp: bool = False) -> Page:
    """A page logged in through the form (``bypass_csp`` lets the test inject axe-core)."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, bypass_csp=bypass_csp)
    page.goto(f"{live.url}/station/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(live.system.passwords[name][1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
    return page


def _alarm(system: LocalSystem) -> str:
    for _ in range(60):
        run(system, 10)
        infusing = [b for b in system.ward.beds if b.pump.channels[0].state is ChannelState.INFUSING]
        if infusing:
            bed = infusing[0]
            bed.world.channel(0).set_occlusion("downstream", True)
            for _ in range(60):
                run(system, 5)
                if bed.pump.alarms.active(0):
                    return bed.pump.config.pump_id
    raise AssertionError("no alarm")


def test_an_alarm_appears_escalates_and_is_acknowledged(browser: Browser, live: Live) -> None:
    page = login(browser, live, "nurse")
    page.goto(f"{live.url}/station/alarms")
    expect(page.get_by_text("No active alarms.")).to_be_visible()
    pump = _alarm(live.system)
    row = page.locator("tr", has_text=pump).first
    expect(row).to_contain_text("occlusion downstream", timeout=15_000)  # live: no reload
    expect(row).to_contain_text("ESCALATED", timeout=15_000)
    expect(row).to_contain_text("charge")
    shot(page, "station-alarms")
    button = row.get_by_role("button", name="Acknowledge")
    button.focus()
    page.keyboard.press("Enter")  # keyboard only
    row = page.locator("tr", has_text=pump).first
    expect(row).to_contain_text("nurse", timeout=10_000)
    expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)


def test_a_library_release_reaches_a_ward(browser: Browser, live: Live) -> None:
    page = login(browser, live, "pharmacist")
    lib = example_library()
    lib = dataclasses.replace(lib, info=dataclasses.replace(lib.info, version="2026.2"))
    package = ward_release(lib, 1, dt.date(2026, 2, 1))
    csrf = page.request.get(f"{live.url}/api/me").json()["csrf"]
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"}
    release = page.request.post(f"{live.url}/api/releases", data=package, headers=headers).json()
    area = live.system.ward.beds[1].area
    members = [b for b in live.system.ward.beds if b.area == area]
    r = page.request.post(
        f"{live.url}/api/releases/{release['id']}/targets", data={"care_areas": [area]}, headers={"X-CSRF-Token": csrf}
    )
    assert r.ok, r.text()
    page.goto(f"{live.url}/station/library")
    for _ in range(120):
        run(live.system, 10)
        if all(b.pump.library_identity and b.pump.library_identity.version == "2026.2" for b in members):
            break
    row = page.locator("table.library tr", has_text=area)
    expect(row).to_contain_text("2026.2")
    expect(page.get_by_test_id(f"active-{area}")).to_have_text(str(len(members)), timeout=15_000)


def _axe(page: Page) -> list[tuple[str, str, int]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], len(v["nodes"])) for v in result["violations"]]


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core (scripts/bootstrap.sh)")
def test_a_pharmacist_uploads_and_releases_a_library_on_the_page(browser: Browser, live: Live, tmp_path: Path) -> None:
    lib = example_library()
    signed = tmp_path / "library-2026.3.oilib"
    signed.write_bytes(ward_release(dataclasses.replace(lib, info=dataclasses.replace(lib.info, version="2026.3")), 1))
    forged = tmp_path / "forged.oilib"
    forged.write_bytes(ward_release(lib, 99))  # signed by keys the server does not trust
    page = login(browser, live, "pharmacist", bypass_csp=True)
    page.goto(f"{live.url}/station/library")
    page.get_by_label("Signed library package").set_input_files(str(forged))
    page.get_by_role("button", name="Upload release").click()
    expect(page.get_by_role("alert")).to_contain_text("forged.oilib")
    expect(page.locator("table.releases tbody tr")).to_have_count(1)  # only the ward's own release
    page.get_by_label("Signed library package").set_input_files(str(signed))
    page.get_by_role("button", name="Upload release").click()
    expect(page.get_by_role("status").filter(has_text="Uploaded")).to_contain_text("2026.3")
    area = live.system.ward.beds[0].area
    members = [b for b in live.system.ward.beds if b.area == area]
    row = page.locator("table.releases tbody tr", has_text="2026.3")
    row.get_by_label(area, exact=True).check()
    row.get_by_role("button", name="Release").click()
    expect(page.get_by_role("status").filter(has_text="Released")).to_contain_text(area)
    expect(page.locator("table.activation", has_text=f"{area}: ")).to_contain_text("DRIFT")  # still on the old one
    for _ in range(120):  # the page follows the ward live: no reload
        run(live.system, 10)
        if all(b.pump.library_identity and b.pump.library_identity.version == "2026.3" for b in members):
            break
    for bed in members:
        expect(page.get_by_test_id(f"state-{bed.pump.config.pump_id}")).to_have_text("active", timeout=15_000)
    expect(page.get_by_test_id(f"active-{area}")).to_have_text(str(len(members)))
    expect(page.locator("table.activation", has_text=f"{area}: ")).not_to_contain_text("DRIFT")
    assert _axe(page) == []
    shot(page, "station-library")
    nurse = login(browser, live, "nurse")
    csrf = nurse.request.get(f"{live.url}/api/me").json()["csrf"]
    refused = nurse.request.post(
        f"{live.url}/station/library/releases", multipart={"csrf_token": csrf, "package": signed}
    )
    assert refused.status == 403


def test_a_login_without_the_role_is_refused(browser: Browser, live: Live) -> None:
    page = login(browser, live, "pharmacist")
    response = page.goto(f"{live.url}/station/alarms")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("pharmacist role may not")
    anonymous = browser.new_page()
    response = anonymous.goto(f"{live.url}/station/fleet")
    assert response is not None and response.status == 401
    anonymous.get_by_label("User name").fill("nurse")
    anonymous.get_by_label("Password").fill("not-the-password")
    anonymous.get_by_role("button", name="Log in").click()
    expect(anonymous.get_by_role("alert")).to_contain_text("wrong user name or password")


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core (scripts/bootstrap.sh)")
def test_every_page_passes_axe(browser: Browser, live: Live) -> None:
    _alarm(live.system)
    page = login(browser, live, "admin", bypass_csp=True)
    pump = live.system.ward.beds[0].pump.config.pump_id
    for path in ("/station/fleet", "/station/alarms", "/station/library", f"/station/pumps/{pump}", "/station/login"):
        page.goto(f"{live.url}{path}")
        assert _axe(page) == [], path
    run(live.system, 2)  # fresh statuses: the pumps show online
    page.goto(f"{live.url}/station/fleet")
    shot(page, "station-fleet")
