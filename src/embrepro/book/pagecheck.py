"""Open every built page in headless Chromium and check what a reader would see.

A page fails on: an image that does not load; a chapter page with no figure; raw LaTeX left in
the text (maths that MathJax did not render); a Python traceback in an output; an internal link
to a missing page or a missing anchor. A screenshot of each page goes to
``<html_dir>/../screenshots/``. The last line printed is ``N passed, M failed``.

Needs Chromium (Debian package ``chromium``) and the ``playwright`` Python package, which drives
the system browser (no browser download).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
RAW_LATEX = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|\\frac\{|\\mathrm\{|\\sum_|\$[^$\n]{1,80}\\[a-zA-Z]+[^$\n]{0,80}\$")
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}

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


def check_page(page, url: str, rel: str, html_dir: Path, base: str, shots: Path) -> list[str]:
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


def check_site(html_dir: str | Path = "_build/html", log=print) -> bool:
    """Check every page; print one line per page and a closing ``N passed, M failed`` line."""
    from playwright.sync_api import sync_playwright

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
                problems = check_page(page, base + rel, rel, html_dir, base, shots)
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
