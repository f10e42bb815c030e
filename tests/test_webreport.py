"""The one-page HTML report: content, self-containment and a real browser's view of it."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from simkit import load
from simkit.scenario import ScenarioError
from simkit.webreport import build_report, describe_scenario, write_report
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A small Anhui run written by the Monte Carlo report writer."""
    from simkit.experiments import run_summary

    out = tmp_path_factory.mktemp("anhui")
    s = load(ROOT / "scenarios" / "anhui_4321.toml").with_changes({"run.n_paths": 2000})
    rep = run_summary(s)
    rep.summary["wall_seconds"] = 1.0
    rep.save(out)
    return out


def test_sentence_states_split_caps_fees_and_time_basis() -> None:
    s = load(ROOT / "scenarios" / "nfgf_2422.toml")
    text = describe_scenario(s, 30_000, 3.1e10)
    for part in ("bank 20 %", "guarantor 40 %", "national_fund 20 % (capped at 4 %",
                 "overflow to guarantor", "borrower → guarantor 1 %", "30,000 loans",
                 "31.0 billion yuan guaranteed", "million yuan per year"):
        assert part in text, part


def test_report_is_self_contained_and_matches_the_summary(run_dir: Path) -> None:
    html = build_report(run_dir)
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']https?:""", html)  # nothing fetched
    assert html.count("data:image/png;base64,") == len(list(run_dir.glob("*.png")))
    summary = json.loads((run_dir / "summary.json").read_text())
    for party, stats in summary["parties"].items():
        m = re.search(rf'data-key="parties\.{party}\.el" data-value="([^"]+)"', html)
        assert m is not None and float(m.group(1)) == stats["el"]
    assert "Net result = fee income − expected loss" in html
    assert "[MEM]" in html  # the scenario's uncertain assumptions are listed
    assert "Provenance" in html and "20250101" in html


def test_write_report_is_atomic_and_refuses_an_empty_folder(run_dir: Path,
                                                             tmp_path: Path) -> None:
    path = write_report(run_dir)
    assert path == run_dir / "report.html" and path.stat().st_size > 10_000
    assert not list(run_dir.glob(".*.tmp"))
    with pytest.raises(ScenarioError, match=r"holds no summary\.json"):
        build_report(tmp_path)


def _browser():
    """A headless Chromium driven by Selenium, or a skip that says what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless Chromium not found: install Debian's `chromium` and "
                    "`chromium-driver` packages (.ci/run does)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def test_report_in_a_real_browser(run_dir: Path, tmp_path: Path) -> None:
    page = write_report(run_dir)
    driver = _browser()
    try:
        driver.set_window_size(1280, 1000)
        driver.get(page.resolve().as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        width = driver.execute_script("return document.documentElement.scrollWidth")
        inner = driver.execute_script("return window.innerWidth")
        assert width <= inner  # no horizontal scrolling at 1280 px
        summary = json.loads((run_dir / "summary.json").read_text())
        from selenium.webdriver.common.by import By

        for party, stats in summary["parties"].items():
            for key in ("el", "es_99.9", "net_result"):
                cell = driver.find_element(By.CSS_SELECTOR, f'td[data-key="parties.{party}.{key}"]')
                shown = cell.find_element(By.CSS_SELECTOR, "span.v").text
                assert float(shown.replace(",", "")) == pytest.approx(stats[key] / 1e6,
                                                                       abs=0.051)
        images = driver.execute_script(
            "return Array.from(document.images).map(i => i.naturalWidth)")
        assert images and all(w > 0 for w in images)  # every figure decodes
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()


def test_missing_numbers_print_as_dash(run_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    party = next(iter(summary["parties"]))
    summary["parties"][party]["es_99.9"] = None
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    html = build_report(tmp_path)
    m = re.search(rf'data-key="parties\.{party}\.es_99\.9" data-value="">'
                  r'<span class="v">([^<]*)</span>', html)
    assert m is not None and m.group(1) == "-"
    assert not math.isnan(summary["parties"][party]["el"])
