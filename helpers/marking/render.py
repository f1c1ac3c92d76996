"""An answer as the student wrote it, into HTML that is safe to show: markdown with math, images, referred outputs.

Raw HTML in a student's markdown is shown as text (markdown-it with ``html=False``), math is kept verbatim for
MathJax to typeset in the page, images come only from the cell's own attachments (as data URIs), and an output's
HTML (a pandas table) is shown in a sandboxed frame, where no script of the student's runs.
"""
from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

# Display math first, then inline; escaped dollars are not math.
_MATH = re.compile(r"(\$\$.+?\$\$|\\\[.+?\\\]|(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$(?!\$))", re.S)
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str, attachments: dict[str, dict] | None = None) -> str:
    """Markdown with TeX math left for MathJax, and ``attachment:`` images as data URIs (others dropped)."""
    saved: list[str] = []

    def keep(match: re.Match) -> str:
        saved.append(match.group(0))
        return f"KITMATH{len(saved) - 1}X"

    out = _md.render(_MATH.sub(keep, text))
    out = re.sub(r"KITMATH(\d+)X", lambda m: html.escape(saved[int(m.group(1))], quote=False), out)

    def image(match: re.Match) -> str:
        src = html.unescape(match.group(1))
        data = (attachments or {}).get(src[len("attachment:"):]) if src.startswith("attachment:") else None
        mime = next((m for m in _IMAGE_MIMES if data and m in data), None)
        if mime is None:
            return '<span class="missing">[image not in the notebook]</span>'
        return f'<img alt="" src="data:{mime};base64,{"".join(data[mime]).strip()}">'

    return re.sub(r'<img src="([^"]*)"[^>]*>', image, out)


def outputs(items: list[dict]) -> str:
    """The outputs of referred code cells: images, tables (sandboxed) and text, in order."""
    parts = []
    for out in items:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(f'<pre class="out">{html.escape("".join(out.get("text", "")))}</pre>')
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            mime = next((m for m in _IMAGE_MIMES if m in data), None)
            if mime:
                body = "".join(data[mime])
                if mime == "image/svg+xml":  # an <img> runs no script inside an SVG
                    import base64
                    body = base64.b64encode(body.encode()).decode()
                parts.append(f'<img class="out" alt="output" src="data:{mime};base64,{body.strip()}">')
            elif "text/html" in data:
                page = "".join(data["text/html"])
                parts.append(f'<iframe class="out" sandbox="" srcdoc="{html.escape(page, quote=True)}"></iframe>')
            elif "text/plain" in data:
                parts.append(f'<pre class="out">{html.escape("".join(data["text/plain"]))}</pre>')
        elif kind == "error":
            parts.append(f'<pre class="out error">{html.escape(out.get("ename", ""))}: {html.escape(out.get("evalue", ""))}</pre>')
    return "\n".join(parts)
