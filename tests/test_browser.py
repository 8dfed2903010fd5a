"""The built site in a real browser: headless Debian Chromium, network blocked.

The test renders a tiny book itself (tests/minibook.py: the project's
_config.yml, a page with display math, a page of lsnb.explore outputs) and
opens every page with Selenium driving /usr/bin/chromium through
/usr/bin/chromedriver; no browser is downloaded.  DNS resolution is mapped to
nothing (``--host-resolver-rules``), so any resource fetched from the network
fails and shows up in the performance log.  Screenshots go to
``tests/artifacts/browser/`` (or ``$LSNB_TEST_ARTIFACTS``) for a person to look at.

Missing locally?  ``sudo apt-get install chromium chromium-driver`` and
``pip install selenium`` (``.ci/run`` installs the browser in CI).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from minibook import PAGE, render_minibook

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOW = ("needs Debian's headless Chromium: `sudo apt-get install chromium chromium-driver` "
       "and `pip install selenium` (.ci/run does this in CI)")

webdriver = pytest.importorskip("selenium.webdriver", reason=HOW)
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(HOW, allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("LSNB_TEST_ARTIFACTS", Path(__file__).parent / "artifacts" / "browser"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return render_minibook(tmp_path_factory.mktemp("minibook"))


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files",
                 "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _pages(site: Path) -> list[Path]:
    """The book's own pages (Sphinx's _static/_sources helpers are not pages)."""
    pages = [p for p in sorted(site.rglob("*.html")) if not any(part.startswith("_") for part in
                                                                  p.relative_to(site).parts)]
    assert any(p.name == f"{PAGE}.html" for p in pages), pages
    return pages


def _load(browser, page: Path) -> None:
    browser.get_log("browser"), browser.get_log("performance")  # forget the previous page
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    browser.execute_script("return new Promise(r => setTimeout(r, 1500))")


def _problems(browser) -> list[str]:
    """Console errors and failed requests since the last :func:`_load`."""
    found = [f"console: {e['message']}" for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.loadingFailed" and not message["params"].get("canceled"):
            found.append(f"request failed: {message['params'].get('errorText')}")
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith(("http://", "https://")):
                found.append(f"network request: {url}")
    return found


def test_every_page_loads_offline_without_errors(site, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for page in _pages(site):
        _load(browser, page)
        assert _problems(browser) == [], page.relative_to(site)
    browser.get_screenshot_as_file(str(ARTIFACTS / "last_page.png"))


def test_mathjax_renders_from_local_files(site, browser):
    _load(browser, site / "math.html")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "mjx-container"))
    assert _problems(browser) == []


def test_explorer_table_sorts_and_filters(site, browser):
    _load(browser, site / "pages" / f"{PAGE}.html")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.dataTable tbody tr"))
    table = browser.find_element(By.CSS_SELECTOR, "table.dataTable")
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    names = [h.text.strip() for h in headers]
    size_col = names.index("size")

    def column(index):
        return [r.find_elements(By.TAG_NAME, "td")[index].text for r in table.find_elements(By.CSS_SELECTOR,
                                                                                              "tbody tr")]

    sizes = [int(v) for v in column(size_col)]
    assert sizes == [9, 11, 8, 10]  # minibook's planted order, unsorted
    headers[size_col].click()
    WebDriverWait(browser, 10).until(lambda d: [int(v) for v in column(size_col)] == sorted(sizes))
    headers[size_col].click()
    WebDriverWait(browser, 10).until(lambda d: [int(v) for v in column(size_col)] == sorted(sizes)[::-1])
    search = browser.find_element(By.CSS_SELECTOR, "div.dt-search input, .dataTables_filter input")
    search.send_keys("11")  # the size of cluster 1 only
    WebDriverWait(browser, 10).until(lambda d: len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 1)
    assert column(size_col) == ["11"]
    browser.get_screenshot_as_file(str(ARTIFACTS / "explorer_table.png"))
    assert _problems(browser) == []


def test_cluster_card_figure_renders(site, browser):
    _load(browser, site / "pages" / f"{PAGE}.html")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg"))
    card = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[0]
    points = card.find_elements(By.CSS_SELECTOR, "g.scatterlayer path.point")
    assert len(points) == 19 + 1  # the random groups and the subcluster itself
    assert card.find_elements(By.CSS_SELECTOR, "g.barlayer path")
    assert card.size["height"] > 100 and card.size["width"] > 100
    browser.execute_script("arguments[0].scrollIntoView()", card)
    card.screenshot(str(ARTIFACTS / "cluster_card.png"))
    assert _problems(browser) == []


def test_fisher_overview_cell_follows_its_link(site, browser):
    _load(browser, site / "pages" / f"{PAGE}.html")
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2)
    overview = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[1]
    browser.execute_script("arguments[0].scrollIntoView()", overview)
    cell = overview.find_elements(By.CSS_SELECTOR, "rect.nsewdrag")[0]  # the first panel's plot area
    webdriver.ActionChains(browser).move_to_element(cell).click().perform()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.location.hash").startswith("#cell-"))
    assert _problems(browser) == []


def test_download_links_resolve_to_files(site, browser):
    page = site / "pages" / f"{PAGE}.html"
    _load(browser, page)
    links = browser.find_elements(By.CSS_SELECTOR, ".lsnb-downloads a")
    assert len(links) >= 2
    for link in links:
        href = link.get_attribute("href")
        assert href.startswith("file://"), href
        target = Path(href.removeprefix("file://"))
        assert target.is_file() and target.stat().st_size > 0, href
        assert target.read_text().splitlines()[0].startswith(("network,", "network")), href


# ----------------------------------------------------------------------------- the real book
@pytest.fixture(scope="module")
def built_site():
    """The site ``make book`` built (``LSNB_BUILT_SITE``, e.g. ``_build/html``; ``make book-check`` sets it)."""
    folder = os.environ.get("LSNB_BUILT_SITE")
    if not folder:
        pytest.skip("set LSNB_BUILT_SITE to a built site (make book-check) to check the real book")
    site = Path(folder).resolve()
    if not (site / "index.html").exists():
        pytest.fail(f"LSNB_BUILT_SITE={folder} holds no index.html: build the book first (make book)")
    return site


def test_built_book_every_page_loads_offline(built_site, browser):
    pages = [p for p in sorted(built_site.rglob("*.html")) if not any(
        part.startswith("_") and part != "_executed" for part in p.relative_to(built_site).parts)]
    assert any(p.name == "02_lesions.html" for p in pages), pages
    for page in pages:
        _load(browser, page)
        assert _problems(browser) == [], page.relative_to(built_site)


def test_built_book_lesion_page_explorer_card_and_downloads(built_site, browser):
    (page,) = built_site.rglob("02_lesions.html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _load(browser, page)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.dataTable tbody tr"))
    table = browser.find_elements(By.CSS_SELECTOR, "table.dataTable")[0]
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    size_col = [h.text.strip() for h in headers].index("size")

    def sizes():
        return [int(r.find_elements(By.TAG_NAME, "td")[size_col].text)
                for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

    headers[size_col].click()
    WebDriverWait(browser, 10).until(lambda d: sizes() == sorted(sizes()))
    headers[size_col].click()
    WebDriverWait(browser, 10).until(lambda d: sizes() == sorted(sizes(), reverse=True) and sizes()[0] > sizes()[-1])
    browser.get_screenshot_as_file(str(ARTIFACTS / "book_lesion_page.png"))
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg"))
    card = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[0]
    assert card.find_elements(By.CSS_SELECTOR, "g.scatterlayer path.point")
    browser.execute_script("arguments[0].scrollIntoView()", card)
    card.screenshot(str(ARTIFACTS / "book_cluster_card.png"))
    links = browser.find_elements(By.CSS_SELECTOR, ".lsnb-downloads a")
    assert links
    for link in links:
        target = Path(link.get_attribute("href").removeprefix("file://"))
        assert target.is_file() and target.stat().st_size > 0, target
    assert _problems(browser) == []
