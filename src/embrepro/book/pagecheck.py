"""Open every built page in headless Chromium and check what a reader would see.

A page fails on: an image that does not load; a chapter page with no figure; raw LaTeX left in
the text (maths that MathJax did not render); a Python traceback in an output; an internal link
to a missing page or a missing anchor; more than one search box in view (pydata-sphinx-theme's header
bar, which ``_config.yml`` switches off). Named pages must show what they are for: the scorecard its
chart, the coverage page its chart and tables (``EXPECTED``). A chapter page must have Colab and
Binder launch links whose notebook is a file of the repository (present and not git-ignored) and a
download link to a built notebook that holds the launch set-up cell (:func:`launch_problems`). A screenshot of each page goes to
``<html_dir>/../screenshots/``. The last line printed is ``N passed, M failed``.

Needs Chromium (Debian package ``chromium``) and the ``playwright`` Python package, which drives
the system browser (no browser download).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
RAW_LATEX = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|\\frac\{|\\mathrm\{|\\sum_|\$[^$\n]{1,80}\\[a-zA-Z]+[^$\n]{0,80}\$")
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
# page -> (image file name that must load on it, least number of table rows)
EXPECTED = {"book/generated/scorecard.html": ("scorecard-outcomes.png", 1),
            "book/generated/coverage.html": ("coverage-areas.png", 300)}

_PAGE_SCRIPT = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; } catch (e) {}
  }
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .MathJax').forEach(n => n.remove());
  const images = Array.from(main.querySelectorAll('img'));
  return {
    text: clone.innerText,
    fullText: main.innerText,
    brokenImages: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    figures: images.length,
    mathSource: main.querySelectorAll('.math, span.math, div.math').length,
    mathRendered: main.querySelectorAll('mjx-container').length,
    tracebacks: main.querySelectorAll('.output.traceback, .output.error').length,
    links: Array.from(main.querySelectorAll('a[href]')).map(a => a.href),
    allLinks: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    loadedImages: images.filter(i => i.complete && i.naturalWidth > 0).map(i => i.getAttribute('src')),
    tableRows: main.querySelectorAll('table tbody tr').length,
    searchBoxes: Array.from(document.querySelectorAll('.search-button-field, .search-button, input[type=search]'))
      .filter(e => { const r = e.getBoundingClientRect();
                     return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; }).length,
  };
}
"""


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Chromium is needed for the page check: apt-get install -y chromium")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - silence the per-request log
        pass


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pages_of(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html")
                  if p.name not in SKIP_PAGES
                  and not any(part.startswith(("_", ".")) for part in p.relative_to(html_dir).parts))


def _anchor_exists(file: Path, fragment: str) -> bool:
    text = file.read_text(errors="ignore")
    return re.search(r'id=["\']%s["\']' % re.escape(fragment), text) is not None


def launch_targets(links: list[str]) -> dict[str, str]:
    """{"colab" | "binder": repository path of the notebook} from a page's launch links."""
    found = {}
    for href in links:
        url = urlparse(href)
        if url.netloc == "colab.research.google.com" and "/blob/" in url.path:
            found["colab"] = unquote(url.path.split("/blob/", 1)[1].split("/", 1)[1])  # after the branch
        elif url.netloc == "mybinder.org" and "urlpath" in parse_qs(url.query):
            path = parse_qs(url.query)["urlpath"][0]
            found["binder"] = re.sub(r"^(lab/tree|tree)/", "", path)
    return found


def in_repository(path: str, repo_root: Path) -> bool:
    """``path`` is a file of the repository: present, and not ignored by git where git is there."""
    if not (repo_root / path).is_file():
        return False
    try:
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=repo_root, capture_output=True)
    except OSError:
        return True
    return ignored.returncode != 0  # 0: ignored; 1: not ignored; 128: not a git repository


def launch_problems(links: list[str], html_dir: Path, base: str, repo_root: Path) -> list[str]:
    """What is wrong with a chapter page's launch and download links (see the module docstring)."""
    problems = []
    targets = launch_targets(links)
    for kind in ("colab", "binder"):
        if kind not in targets:
            problems.append(f"no {kind} launch link")
        elif not in_repository(targets[kind], repo_root):
            problems.append(f"{kind} launch link opens {targets[kind]}, which is not a file of the repository")
    downloads = [h for h in links if h.startswith(base) and "/_sources/" in h and h.endswith(".ipynb")]
    if not downloads:
        problems.append("no download link to the notebook")
    for href in downloads:
        file = html_dir / unquote(urlparse(href).path.lstrip("/"))
        if not file.is_file():
            problems.append(f"download link to a missing file: {urlparse(href).path}")
        elif not _has_setup_cell(file):
            problems.append(f"the downloaded notebook {urlparse(href).path} has no launch set-up cell")
    return problems


def _has_setup_cell(path: Path) -> bool:
    from embrepro.book.runner import LAUNCH_TAG

    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(LAUNCH_TAG in c.get("metadata", {}).get("tags", []) for c in cells)


def check_page(page, url: str, rel: str, html_dir: Path, base: str, shots: Path,
               repo_root: Path | None = None) -> list[str]:
    problems = []
    response = page.goto(url, wait_until="load")
    if response is None or not response.ok:
        return [f"page did not load ({response.status if response else 'no response'})"]
    for attempt in range(5):  # a redirect page (index.html) navigates away: check where it lands
        try:
            page.wait_for_load_state("load")
            info = page.evaluate(_PAGE_SCRIPT)
            break
        except Exception:  # noqa: BLE001 - playwright raises a plain Error mid-navigation
            if attempt == 4:
                raise
            page.wait_for_timeout(300)
    page.screenshot(path=str(shots / (rel.replace("/", "__") + ".png")), full_page=True)
    for src in info["brokenImages"]:
        problems.append(f"image does not load: {src}")
    if rel.startswith("book/chapters/") and info["figures"] == 0:
        problems.append("chapter page has no figure")
    if rel.startswith("book/chapters/") and repo_root is not None:
        problems += launch_problems(info["allLinks"], html_dir, base, repo_root)
    if rel in EXPECTED:
        image, rows = EXPECTED[rel]
        if not any(src.rsplit("/", 1)[-1] == image for src in info["loadedImages"]):
            problems.append(f"its chart {image} is not shown")
        if info["tableRows"] < rows:
            problems.append(f"{info['tableRows']} table rows, expected at least {rows}")
    if info["searchBoxes"] > 1:
        problems.append(f"{info['searchBoxes']} search boxes shown at once (the theme's header bar is back?)")
    if info["mathSource"] and not info["mathRendered"]:
        problems.append("maths present but MathJax rendered none of it")
    match = RAW_LATEX.search(info["text"])
    if match:
        problems.append(f"raw LaTeX in the text: {match.group(0)[:60]!r}")
    if info["tracebacks"] or "Traceback (most recent call last)" in info["fullText"]:
        problems.append("a Python traceback is shown in an output")
    for href in info["links"]:
        if not href.startswith(base):
            continue
        parsed = urlparse(href)
        target = html_dir / unquote(parsed.path.lstrip("/"))
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link: {parsed.path}")
        elif parsed.fragment and target.suffix == ".html" and not _anchor_exists(target, unquote(parsed.fragment)):
            problems.append(f"broken anchor: {parsed.path}#{parsed.fragment}")
    return sorted(set(problems))


def check_site(html_dir: str | Path = "_build/html", log=print, repo_root: Path | None = None) -> bool:
    """Check every page; print one line per page and a closing ``N passed, M failed`` line.
    Launch links are checked against ``repo_root`` (default: the project)."""
    from playwright.sync_api import sync_playwright

    from embrepro.paths import project_root

    repo_root = Path(repo_root or project_root())
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").exists():
        raise RuntimeError(f"no built book in {html_dir}: run `make book` or `embrepro book` first")
    shots = html_dir.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    server = _serve(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    passed = failed = 0
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS,
                                        env={**os.environ, "HOME": str(html_dir.parent)})
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for file in pages_of(html_dir):
                rel = file.relative_to(html_dir).as_posix()
                problems = check_page(page, base + rel, rel, html_dir, base, shots, repo_root)
                if problems:
                    failed += 1
                    log(f"FAIL {rel}")
                    for problem in problems:
                        log(f"     - {problem}")
                else:
                    passed += 1
                    log(f"ok   {rel}")
            browser.close()
    finally:
        server.shutdown()
    log(f"pages: {passed} passed, {failed} failed")
    return failed == 0 and passed > 0
