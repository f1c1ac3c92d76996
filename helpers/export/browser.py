"""Print notebook HTML to PDF with an installed Chrome/Chromium, offline, formulas typeset.

nbconvert's ``WebPDFExporter`` only launches playwright's own browser download, which cannot
happen offline, and it prints after a fixed wait.  ``KitWebPDFExporter`` changes exactly that:
it launches the browser that ``find_browser`` finds (``CHROMIUM_PATH``, then the usual names and
install paths, then playwright's own), loads MathJax from a local copy, blocks the network, and
prints once MathJax says typesetting is finished.  The page is laid out in a window exactly as
wide as the printed text, fitted to it and measured (``helpers.export.layout``); what still does not
fit is kept in ``resources["kit_findings"]``.  The PDF carries bookmarks from the headings.  It is
registered as the nbconvert exporter ``kitpdf``, so ``jupyter nbconvert --to kitpdf x.ipynb`` works.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbconvert.exporters.webpdf import WebPDFExporter
from pypdf import PdfWriter
from pypdf.generic import NameObject, TextStringObject
from traitlets import Bool, Float, Unicode, default

from .layout import FIT_JS, PAPER, PRINT_CSS, TEXT_WIDTH_PX, Finding, findings_from, fit_options, pdf_margins
from .mathjax import MATHJAX_CONFIG, local_mathjax
from .tidy import tidy_notebook

if TYPE_CHECKING:
    from nbformat import NotebookNode

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MAC_BROWSERS = (
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
)
# Relative to %PROGRAMFILES%, %PROGRAMFILES(X86)% and %LOCALAPPDATA%; Edge is Chromium too and
# ships with every Windows, so it is the last resort there.
WINDOWS_BROWSERS = (
    r"Google\Chrome\Application\chrome.exe",
    r"Chromium\Application\chrome.exe",
    r"Microsoft\Edge\Application\msedge.exe",
)
CDN_MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js" + MATHJAX_CONFIG
# Root in a container cannot use Chromium's sandbox; the page is the student's own notebook and
# the network is blocked, so printing without it is acceptable.  The rest keep a headless
# browser from phoning home or stalling on first-run chores.
BROWSER_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--allow-file-access-from-files",
)
VIEWPORT = {"width": TEXT_WIDTH_PX, "height": 1100}
# The headings' text as a reader sees it (without nbconvert's "¶" anchor links), for the bookmarks.
HEADINGS_JS = """() => Array.from(document.querySelectorAll("h1, h2, h3, h4, h5, h6")).map((h) => {
  const copy = h.cloneNode(true);
  copy.querySelectorAll(".anchor-link").forEach((a) => a.remove());
  return copy.textContent.trim();
})"""
# Polled until truthy: once MathJax 2 has finished starting up, queue a marker behind the
# typesetting it queued; the marker running means every formula is typeset.  (Waiting on the
# "End" startup hook instead hangs when the hook fired before we asked.)
MATH_DONE_JS = """() => {
  if (!window.MathJax || !window.MathJax.Hub) return "absent";
  if (!MathJax.isReady) return false;
  if (window.__kitMathDone) return "typeset";
  if (!window.__kitMathQueued) {
    window.__kitMathQueued = true;
    MathJax.Hub.Queue(() => { window.__kitMathDone = true; });
  }
  return false;
}"""


def find_browser(explicit: str | None = None) -> str | None:
    """Return the path of an installed Chrome/Chromium: argument, CHROMIUM_PATH, usual names; else None."""
    wanted = explicit or os.environ.get("CHROMIUM_PATH")
    if wanted:
        found = shutil.which(wanted) or (wanted if Path(wanted).is_file() else None)
        if found is None:
            raise ValueError(
                f"Browser {wanted!r} (from CHROMIUM_PATH or the chromium_path setting) does not exist; "
                "point it at a Chrome/Chromium executable or unset it to search the usual places."
            )
        return found
    for name in BROWSER_NAMES:
        if path := shutil.which(name):
            return path
    for path in _platform_paths():
        if path.is_file():
            return str(path)
    return None


def playwright_browser() -> str | None:
    """Return playwright's own downloaded Chromium when one is installed, else None."""
    def ask() -> str | None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            return None
        with sync_playwright() as p:
            path = p.chromium.executable_path
        return path if path and Path(path).is_file() else None

    # sync_playwright refuses to run inside an event loop (Jupyter's), so ask from a thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(ask).result()


def local_mathjax_url() -> str | None:
    """Return a file:// URL of a local MathJax 2 (pip jupyter-server-mathjax or the OS package)."""
    path = local_mathjax()
    return path.as_uri() + MATHJAX_CONFIG if path else None


class KitWebPDFExporter(WebPDFExporter):
    """nbconvert's webpdf, printed by an installed Chromium with local MathJax and tidy outputs."""

    export_from_notebook = "PDF via installed Chromium (course kit)"
    _name = "notebook"   # names the findings of the page being printed

    chromium_path = Unicode(
        "", help="Chrome/Chromium executable; empty: CHROMIUM_PATH, then the usual names and paths."
    ).tag(config=True)
    math_timeout = Float(60.0, help="Seconds to wait for MathJax to finish typesetting.").tag(config=True)
    paper_format = Unicode(PAPER, help="Paper size passed to Chromium's print (A4, Letter, ...).").tag(config=True)
    allow_network = Bool(
        False, help="Let the page load http(s) resources; off, so a print never waits on a CDN."
    ).tag(config=True)
    tidy_outputs = Bool(True, help="Widgets as text, progress bars collapsed, huge outputs trimmed.").tag(config=True)
    pagebreaks = Bool(False, help="Start each question of a student notebook on a new page.").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.findings: list[Finding] = []   # what the last print could not fit (preflight)

    @default("mathjax_url")
    def _local_mathjax(self) -> str:
        url = local_mathjax_url()
        if url is None:
            self.log.warning("No local MathJax found (install libjs-mathjax or jupyter-server-mathjax); "
                             "formulas need the network to render.")
            return CDN_MATHJAX
        return url

    @default("embed_images")
    def _embed_images(self) -> bool:
        # The HTML is printed from a temporary folder, so relative image links would break.
        return True

    def from_notebook_node(self, nb: NotebookNode, resources: dict | None = None, **kw: Any) -> tuple[bytes, dict]:
        """Convert a notebook node to PDF bytes (tidying its outputs first)."""
        if self.tidy_outputs:
            nb = tidy_notebook(nb, pagebreaks=self.pagebreaks)
        self._name = ((resources or {}).get("metadata") or {}).get("name", "notebook")
        pdf, resources = super().from_notebook_node(nb, resources=resources, **kw)
        resources["kit_findings"] = list(self.findings)
        return pdf, resources

    def print_html(self, html: str) -> bytes:
        """Print a page of our own (a cover, a failure notice) with the same browser and margins."""
        self._name = "page"
        return self.run_playwright(html)

    def run_playwright(self, html: str) -> bytes:
        """Print ``html`` to PDF bytes with the installed browser."""
        with tempfile.TemporaryDirectory(prefix="kitpdf-") as tmp:
            page_file = Path(tmp) / "notebook.html"
            page_file.write_text(html, encoding="utf-8")
            # playwright's async API needs its own event loop, which Jupyter already runs here.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, self._print(page_file.as_uri())).result()

    async def _print(self, url: str) -> bytes:
        """Open ``url`` in headless Chromium, wait for MathJax, print to PDF."""
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            browser = await self._launch(playwright)
            try:
                # As wide as the printed text, so MathJax breaks equations where the paper ends.
                page = await browser.new_page(viewport=VIEWPORT)
                if not self.allow_network:
                    await page.route(self._blocked, lambda route: route.abort())
                await page.goto(url, wait_until="load")
                await page.add_style_tag(content=PRINT_CSS)
                await self._wait_for_math(page)
                await page.emulate_media(media="print")
                await page.wait_for_timeout(self.page_render_timeout)
                self.findings = findings_from(await page.evaluate(FIT_JS, fit_options()), self._name)
                headings = await page.evaluate(HEADINGS_JS)
                pdf = await page.pdf(print_background=True, format=self.paper_format, margin=pdf_margins(),
                                     outline=True, tagged=True)
                return fix_bookmark_titles(pdf, headings)
            finally:
                await browser.close()

    def _blocked(self, url: str) -> bool:
        """Whether the page may not load ``url``: any web URL but MathJax's own (no local copy)."""
        mathjax_base = self.mathjax_url.split("?")[0].rsplit("/", 1)[0]
        return _is_web_url(url) and not url.startswith(mathjax_base)

    async def _launch(self, playwright):
        """Launch the installed browser, else playwright's own, else explain how to get one."""
        executable = find_browser(self.chromium_path or None)
        args = [*BROWSER_ARGS, *self.browser_args]
        try:
            return await playwright.chromium.launch(
                executable_path=executable, args=args,
                handle_sigint=False, handle_sigterm=False, handle_sighup=False,
            )
        except Exception as error:
            where = executable or "playwright's own Chromium (none installed)"
            raise RuntimeError(
                f"Could not start a browser to print the PDF ({where}): {error}\n"
                "Install Chromium (scripts/setup_pdf_tools.sh) or set CHROMIUM_PATH to a "
                "Chrome/Chromium executable; or use --via latex where TeX is installed."
            ) from error

    async def _wait_for_math(self, page) -> None:
        """Wait until MathJax has typeset every formula (warn and go on after math_timeout)."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            done = await page.wait_for_function(MATH_DONE_JS, polling=100, timeout=self.math_timeout * 1000)
            status = await done.json_value()
            await page.evaluate("document.fonts.ready.then(() => true)")
        except PlaywrightTimeout:
            self.log.warning("MathJax did not finish within %.0f s; formulas may print as TeX.", self.math_timeout)
            return
        if status == "absent":
            self.log.warning("MathJax did not load from %s; formulas print as TeX.", self.mathjax_url)


def fix_bookmark_titles(pdf: bytes, headings: list[str]) -> bytes:
    """Give bookmarks their heading's text: Chromium drops the space where a heading wrapped."""
    proper = {re.sub(r"\s+", "", heading): heading for heading in headings}
    # Chromium's tagged PDFs declare a trailer size pypdf finds too small; it reads them fine, so
    # its warning ("Object count ... exceeds defined trailer size") would only be noise.
    quiet = logging.getLogger("pypdf")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        writer = PdfWriter(clone_from=io.BytesIO(pdf))
    finally:
        quiet.setLevel(level)
    outlines = writer.root_object.get("/Outlines")
    pending = [outlines.get_object().get("/First")] if outlines is not None else []
    while pending:
        node = pending.pop()
        if node is None:
            continue
        node = node.get_object()
        title = str(node.get("/Title", ""))
        if (heading := proper.get(re.sub(r"\s+", "", title))) is not None and heading != title:
            node[NameObject("/Title")] = TextStringObject(heading)
        pending += [node.get("/First"), node.get("/Next")]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _is_web_url(url: str) -> bool:
    """Whether a request goes to the network (file: and data: URLs stay local)."""
    return url.startswith(("http://", "https://"))


def _platform_paths() -> list[Path]:
    """Install locations of Chrome/Chromium on macOS and Windows."""
    if sys.platform == "darwin":
        return [Path(p) for p in MAC_BROWSERS] + [Path.home() / p.lstrip("/") for p in MAC_BROWSERS]
    if os.name == "nt":
        roots = [os.environ.get(v) for v in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
        return [Path(root) / rel for root in roots if root for rel in WINDOWS_BROWSERS]
    return []
