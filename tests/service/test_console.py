"""The web console (`service/console/`), served on the HTTP port: its files, its plots, and (slow) the page
itself in headless Chromium against a real server: it runs a search and must show the hits the
in-process search returns, in order."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

TEXTS = ["the wing stalls at high angle of attack", "boundary layer flow over a flat plate",
         "shock waves in supersonic flow", "heat transfer in laminar flow", "supersonic shock and wing drag"]


@pytest.fixture
def console(start_server, database, tmp_path):
    coll = database.create_collection("docs", encoder="hashing", payload={"year": "numeric"})
    coll.upsert([{"id": f"d{i}", "text": t, "metadata": {"year": 1950 + i}} for i, t in enumerate(TEXTS)], wait=True)
    server = start_server(http_port=0)
    return server


def test_console_files_and_plots_are_served(console):
    with httpx.Client(base_url=console.url) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/console/console.js">' in page.text and "//" not in re.sub(
            r'(href|src)="/[^"]*"', "", page.text.split("<body>")[1]).replace("http://", "")  # nothing from a CDN
        script = http.get("/console/console.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "Search/Search" in script.text
        assert http.get("/console/console.css").status_code == 200
        assert http.get("/console/nope.js").status_code == 404
        assert http.get("/console/..%2Fhttp.py").status_code == 404
        plots = http.get("/bench/").json()["plots"]
        results = Path(__file__).resolve().parents[2] / "bench" / "results"
        assert set(plots) == {p.name for p in results.glob("*.png")}
        if plots:
            image = http.get(f"/bench/{plots[0]}")
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert http.get("/bench/../pyproject.toml").status_code == 404


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
def test_console_search_in_headless_chromium(console, database, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")
    url = f"{console.url}/?collection=docs&q=supersonic+shock&mode=dense&k=3"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--window-size=1280,1100"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    shown = re.findall(r'<li class="hit" data-id="([^"]+)"', dom)
    expected = [h.id for h in database.collection("docs").search("supersonic shock", 3)]
    assert shown == expected, dom[-2000:]
    assert re.search(r'<tr class="stage"><td>dense</td>', dom)  # the plan, with its timings
    assert re.search(r'<tr data-collection="docs"><td>docs</td><td class="count">5</td>', dom)
    screenshot = tmp_path / "console.png"
    subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("LAMINA_SCREENSHOT"):  # a path: keep the screenshot for a person to look at
        shutil.copy(screenshot, os.environ["LAMINA_SCREENSHOT"])
