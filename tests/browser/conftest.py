"""The built site in a real browser: fixtures for ``tests/browser`` (``make browser-test``).

The tests open the ``_build/html`` that ``make book`` produced earlier; they never build the book
or execute a chapter. The site is served over ``http://127.0.0.1:<port>`` from a thread, and
Debian's Chromium (``apt-get install chromium chromium-driver``) is driven by Selenium through
``/usr/bin/chromedriver``, named explicitly so that Selenium Manager never downloads a browser or
a driver. Chromium may reach no other host: every host name resolves to nothing but 127.0.0.1,
everything else goes to a dead proxy, and background networking is off. A page that still works
proves the site reads offline, and the browser's network log proves that it asked for nothing
else (:func:`PageFacts.foreign_requests`).

Override the binaries with ``ESSER_LAB_CHROMIUM`` and ``ESSER_LAB_CHROMEDRIVER``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("ESSER_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ESSER_LAB_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1280, 2000)
# How long a page may take to draw its maths, widgets and images (2 busy cores: a few seconds).
PAGE_TIMEOUT_S = 30.0

INSTALL_HINT = (
    "apt-get update && apt-get install -y chromium chromium-driver "
    "(.ci/run does this), or set ESSER_LAB_CHROMIUM / ESSER_LAB_CHROMEDRIVER"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "browser: opens the built site (_build/html) in headless Chromium; "
        "run with `make browser-test` after `make book` (`make test` deselects it)",
    )


# --------------------------------------------------------------------------------------------
# The site, served from a thread
# --------------------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The browser drops connections it no longer needs (a page left mid-load): not an error.
        pass


@pytest.fixture(scope="session")
def site_dir() -> Path:
    """``_build/html``; missing is a failure (the tests check a build, they do not make one)."""
    if not (SITE / "index.html").is_file():
        pytest.fail(
            f"{SITE / 'index.html'} is missing: run `make book` first. The browser tests check "
            "the site that `make book` built; they never build it themselves.",
            pytrace=False,
        )
    return SITE


@pytest.fixture(scope="session")
def base_url(site_dir: Path):
    """``http://127.0.0.1:<port>/`` serving ``_build/html``."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------
# Headless Chromium, offline
# --------------------------------------------------------------------------------------------


def chromium_arguments(user_data_dir: str) -> list[str]:
    """Headless, no sandbox (root in CI), and no way out but 127.0.0.1."""
    width, height = WINDOW
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={user_data_dir}",
        # Offline: no name resolves but 127.0.0.1, and what bypasses resolution (an IP address)
        # meets a dead proxy. Chromium never proxies loopback.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--metrics-recording-only",
        "--no-pings",
        "--mute-audio",
    ]


@pytest.fixture(scope="session")
def driver():
    """A Selenium driver for Debian's Chromium, with its network log switched on."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"not found: {', '.join(missing)}. Install: {INSTALL_HINT}", pytrace=False)
    # Selenium Manager would look for (and download) drivers; both binaries are named below, so
    # it has nothing to do, and offline mode makes sure it never tries.
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="esser-lab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in chromium_arguments(profile):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(PAGE_TIMEOUT_S)
    browser.set_script_timeout(PAGE_TIMEOUT_S)
    # Let the start-up page settle, so its requests do not show up in the first page's log.
    browser.get("about:blank")
    time.sleep(0.5)
    browser.get_log("performance")
    browser.get_log("browser")
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# A page, loaded once per session, and what the tests check about it
# --------------------------------------------------------------------------------------------

# Runs in the page: true once the maths is typeset, every widget view is drawn (or reported
# broken) and every image has finished loading. Lazy images are made eager first.
_SETTLED_JS = """
for (const img of document.images) { if (img.loading === 'lazy') img.loading = 'eager'; }
const maths = Array.from(document.querySelectorAll('.math'));
const mathsDone = maths.every(m => m.querySelector('mjx-container'));
const views = document.querySelectorAll(
  'script[type="application/vnd.jupyter.widget-view+json"]').length;
const drawn = document.querySelectorAll('.jupyter-widgets').length;
const imagesDone = Array.from(document.images).every(i => i.complete);
return document.readyState === 'complete' && mathsDone && (views === 0 || drawn > 0)
  && imagesDone;
"""

# Runs in the page: everything the tests check, in one round trip.
_FACTS_JS = """
const text = el => (el.innerText || el.textContent || '').trim();
const outputs = Array.from(document.querySelectorAll('.cell_output'));
const errorLine = /^(Traceback \\(most recent call last\\)|\\w+(Error|Exception): )/m;
return {
  title: document.title,
  h1: Array.from(document.querySelectorAll('main h1, article h1')).map(text),
  images: Array.from(document.images).map(i => ({
    src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth})),
  outputImages: document.querySelectorAll('.cell_output img').length,
  maths: document.querySelectorAll('.math').length,
  mathsTypeset: Array.from(document.querySelectorAll('.math'))
    .filter(m => m.querySelector('mjx-container')).length,
  mjxContainers: document.querySelectorAll('mjx-container').length,
  mathErrors: Array.from(document.querySelectorAll('mjx-merror'))
    .map(e => e.getAttribute('data-mjx-error') || text(e)),
  widgetState: document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-state+json"]').length,
  widgetViews: document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]').length,
  widgets: document.querySelectorAll('.jupyter-widgets').length,
  widgetControls: document.querySelectorAll('.jupyter-widgets [class*="widget-"]').length,
  widgetErrors: Array.from(document.querySelectorAll('.jupyter-widgets'))
    .map(text).filter(t => /Error displaying widget|model not found/i.test(t)),
  stderr: Array.from(document.querySelectorAll('.output.stderr')).map(text),
  tracebacks: Array.from(document.querySelectorAll('.output.traceback')).map(text),
  errorOutputs: outputs.map(text).filter(t => errorLine.test(t)).map(t => t.slice(0, 300)),
  colabHrefs: Array.from(document.querySelectorAll('a.esser-colab-badge'))
    .map(a => a.getAttribute('href')),
};
"""


_PAGE_HEIGHT_JS = (
    "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"
)


NETWORK_SCHEMES = ("http", "https", "ws", "wss", "ftp")
# Chromium asks every site for /favicon.ico; the book has none, and a 404 for it is harmless.
_HARMLESS = ("/favicon.ico",)
# Upstream and harmless; any other console error fails the test:
# - Sphinx 7.4 writes an inline script registered after the builder started (sphinx-thebe's
#   `const THEBE_JS_URL = ...`) into every page twice; the second copy cannot redeclare the
#   constant (thebe is off, nothing uses it);
# - pydata-sphinx-theme logs an error on a visitor's first page, before any light/dark choice
#   is stored, and falls back to "auto".
_KNOWN_CONSOLE_ERRORS = (
    "Identifier 'THEBE_JS_URL' has already been declared",
    "Got invalid theme mode: . Resetting to auto.",
)


@dataclass
class PageFacts:
    """One page as the browser drew it."""

    url: str
    status: int
    seconds: float
    settled: bool
    facts: dict
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        """Network requests for anything but the local server (data:, blob: stay in the page)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme in NETWORK_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
        ]


def _network_log(browser) -> tuple[list[str], list[str]]:
    """Drain the performance log: (every URL requested, every failed or 4xx/5xx request)."""
    requested, failed, urls_by_id = [], [], {}
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls_by_id[params["requestId"]] = url
            requested.append(url)
        elif method == "Network.responseReceived":
            response = params["response"]
            if response.get("status", 200) >= 400 and not response["url"].endswith(_HARMLESS):
                failed.append(f"{response['status']} {response['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = urls_by_id.get(params["requestId"], params["requestId"])
            if not url.endswith(_HARMLESS):
                failed.append(f"{params.get('errorText', 'failed')} {url}")
    return requested, failed


def _console_errors(browser) -> list[str]:
    """SEVERE console messages but the known, harmless ones (favicon 404, thebe's duplicate)."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE"
        and not any(known in entry["message"] for known in _KNOWN_CONSOLE_ERRORS + _HARMLESS)
    ]


class Site:
    """Loads pages of the built site in the browser, each once per session."""

    def __init__(self, browser, base_url: str):
        self.browser = browser
        self.base_url = base_url
        self._pages: dict[str, PageFacts] = {}

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def load(self, path: str) -> PageFacts:
        """Open ``path`` (relative to the site root), wait until it has settled, read it."""
        if path not in self._pages:
            self._pages[path] = self._load(path)
        return self._pages[path]

    def show(self, path: str) -> PageFacts:
        """Make ``path`` the page in the browser (loads it on first use)."""
        facts = self.load(path)
        if self.browser.current_url != facts.url:
            self.browser.get(facts.url)
            if facts.settled:  # a page that never settled is not waited for twice
                self._wait(lambda: self.browser.execute_script(_SETTLED_JS))
        return facts

    def _wait(self, condition) -> bool:
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return False

    def wait_for(self, script: str, *args):
        """Run ``script`` in the page until it returns something truthy (or time is up)."""
        result = None

        def done() -> bool:
            nonlocal result
            result = self.browser.execute_script(script, *args)
            return bool(result)

        self._wait(done)
        return result

    def _load(self, path: str) -> PageFacts:
        url = self.url(path)
        try:
            with urllib.request.urlopen(url.split("?")[0], timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        _network_log(self.browser)  # drop what earlier pages left in the logs
        _console_errors(self.browser)
        start = time.perf_counter()
        self.browser.get(url)
        settled = self._wait(lambda: self.browser.execute_script(_SETTLED_JS))
        seconds = time.perf_counter() - start
        facts = self.browser.execute_script(_FACTS_JS)
        requested, failed = _network_log(self.browser)
        return PageFacts(
            url=url,
            status=status,
            seconds=seconds,
            settled=settled,
            facts=facts,
            requests=requested,
            failed=failed,
            console_errors=_console_errors(self.browser),
        )

    def screenshot(self, path: str, destination: Path, *, theme: str | None = None) -> Path:
        """A full-page PNG of ``path``, 1280 px wide, optionally in the ``light``/``dark`` theme."""
        self.show(path)
        if theme is not None:
            # pydata-sphinx-theme reads the reader's choice from localStorage when a page loads.
            self.browser.execute_script(
                "localStorage.setItem('mode', arguments[0]);"
                "localStorage.setItem('theme', arguments[0]);",
                theme,
            )
            self.browser.refresh()
            self._wait(lambda: self.browser.execute_script(_SETTLED_JS))
            self.browser.execute_script("localStorage.removeItem('mode');")
            self.browser.execute_script("localStorage.removeItem('theme');")
        # The whole page as one tall viewport (captureBeyondViewport on a page this tall drew
        # the layout shifted sideways now and then), then back to the window's size.
        width, height = WINDOW
        for _ in range(3):  # a taller viewport can change the page's height (sticky sidebars)
            full = self.browser.execute_script(_PAGE_HEIGHT_JS)
            if full == height:
                break
            height = full
            self.browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            time.sleep(0.3)
        try:
            self.browser.execute_script("window.scrollTo(0, 0)")
            shot = self.browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        finally:
            self.browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(base64.b64decode(shot["data"]))
        if theme is not None:  # the next show() loads the page again, in the default theme
            self.browser.get("about:blank")
        return destination


@pytest.fixture(scope="session")
def site(driver, base_url) -> Site:
    return Site(driver, base_url)
