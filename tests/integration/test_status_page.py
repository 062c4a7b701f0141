"""The status page in a real headless Chromium, against a real daemon, slapd and simulator.

The page is driven with Selenium through Debian's chromedriver; what it shows is compared
with what the daemon's JSON API says, and a change of state must reach the page without a
reload.  A screenshot is kept in the test's directory (its path is printed).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fixtures_daemon import Daemon, Estate, wait_for
from tests.integration.test_daemon import (
    births,
    identity,
    wait_states,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BAD_VLAN = """dn: cn=ClusterB-Net,ou=policies,{base}
changetype: modify
replace: statelessPortGroup
statelessPortGroup: vMotion; vlan=5000
"""
GOOD_VLAN = BAD_VLAN.replace("vlan=5000", "vlan=21")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium under chromedriver, with a profile of its own."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium is not installed (Debian packages chromium, chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="stateless-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1100",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# What the page shows, read in one script run: the page redraws between two WebDriver calls.
READ_PAGE = """
const q = (sel) => [...document.querySelectorAll(sel)];
return {
  live: document.getElementById("live").dataset.live,
  counts: Object.fromEntries(q("#states [data-count]").map(
    (e) => [e.dataset.count, Number(e.textContent)])),
  attention: Object.fromEntries(q("#attention-rows tr").map((r) => [r.dataset.host, {
    state: r.dataset.state, reason: r.querySelector("td.reason").textContent,
    text: r.textContent}])),
  attention_none: !document.getElementById("attention-none").hidden,
  sites: q("#site-rows tr").map((r) => r.dataset.group),
  clusters: q("#cluster-rows tr").map((r) => r.dataset.group),
  problems: document.getElementById("problem-rows").textContent,
  directory: document.getElementById("directory").textContent,
};
"""


def read_page(driver: Any) -> dict[str, Any]:
    page: dict[str, Any] = driver.execute_script(READ_PAGE)
    return page


def test_the_status_page_shows_the_fleet_and_follows_it_live(
        estate: Estate, tmp_path: Path, browser: Any,
        daemons: Callable[..., Daemon]) -> None:

    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--scan-interval", "3600", "--public-read"))
    prod, lab = [identity(n, "siteA") for n in (1, 2)], [identity(n, "siteB") for n in (11, 12)]
    assert births(d, prod + lab) == [202] * 4
    wait_states(d, [i["uuid"] for i in prod + lab])
    estate.ldapmodify(BAD_VLAN.format(base=estate.base))  # lab hosts: failed, with the reason
    failed = wait_states(d, [i["uuid"] for i in lab], "failed", timeout=30)

    browser.get(d.url + "/")
    wait_for(lambda: read_page(browser)["live"] == "ok", timeout=30,
             what="the page's first poll")
    page, summary = read_page(browser), d.get("/v1/summary")
    assert page["counts"] == summary["states"]
    assert page["counts"]["compliant"] == 2 and page["counts"]["failed"] == 2
    for i in lab:
        row = page["attention"][i["uuid"]]
        assert row["state"] == "failed"
        assert row["reason"] == failed[i["uuid"]]["reason"] and "vlan" in row["reason"]
        # The host's last events, from GET /v1/hosts/{uuid}/events: the edit, then the failure.
        assert "drift: " in row["text"] and "failure: " in row["text"], row["text"]
    assert {"siteA", "siteB"} <= set(page["sites"])
    assert {"/DC1/Prod/ClusterA", "/DC1/Lab/ClusterB"} <= set(page["clusters"])
    # Problems are listed in the snapshot thread at most once a second after a change.
    wait_for(lambda: "ClusterB-Net" in read_page(browser)["problems"], timeout=30,
             what="the bad policy in the page's problem list")
    assert page["directory"] == "synchronized"
    shot = tmp_path / "status-page.png"
    assert browser.save_screenshot(str(shot))
    print(f"status page screenshot: {shot}")

    # A change of state reaches the open page without a reload.
    browser.execute_script("window.notReloaded = true;")
    estate.ldapmodify(GOOD_VLAN.format(base=estate.base))  # the lab hosts are applied again
    wait_for(lambda: read_page(browser)["counts"].get("compliant") == 4, timeout=30,
             what="the page to show four compliant hosts")
    assert d.get("/v1/summary")["states"] == {"compliant": 4, "registered": 2}
    page = read_page(browser)
    assert "failed" not in page["counts"] and not page["attention"] and page["attention_none"]
    assert browser.execute_script("return window.notReloaded === true;")
    assert browser.save_screenshot(str(tmp_path / "status-page-after.png"))
