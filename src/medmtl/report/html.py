"""One self-contained HTML page from a Markdown report: figures embedded, opens offline.

``report.md`` (runs) and ``comparison.md`` (``medmtl compare``) reference their figures as
``![alt](figure.png)`` relative to their folder. :func:`write_html_report` writes ``report.html``
(``comparison.html``) beside them with every image embedded as a base64 ``data:`` URI and every
link to a local data file (the ROC/FROC points, ``*.csv``) embedded too, as a ``data:`` URI with a
``download`` name, so the one file can be mailed or moved and still shows everything. The page
loads nothing: a small CSS in ``<style>``, no scripts, no fonts, and a Content-Security-Policy
that would block any outside resource. An image whose file is missing becomes a visible
placeholder (``[missing figure: x.png]``), never an error.

The conversion is Python-Markdown's (with the ``tables``, ``fenced_code`` and ``sane_lists``
extensions): headings, paragraphs, emphasis, code, pipe tables, lists, images and links.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import xml.etree.ElementTree as etree
from pathlib import Path
from urllib.parse import unquote, urlsplit

import markdown
from markdown.treeprocessors import Treeprocessor

from medmtl.io_utils import atomic_write_text

#: linked local files larger than this stay relative links rather than swelling the page
MAX_EMBEDDED_LINK_BYTES = 5 * 1024 * 1024

_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".svg": "image/svg+xml", ".webp": "image/webp"}
_LINK_TYPES = {".csv": "text/csv", ".tsv": "text/tab-separated-values", ".json": "application/json",
               ".txt": "text/plain", ".yaml": "text/plain", ".yml": "text/plain"}

# nothing but the page itself and data: URIs may load
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
       background: #fff; margin: 0; line-height: 1.5; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.35em; border-bottom: 1px solid #d0d7de; padding-bottom: .25em; margin-top: 1.6em; }
h3 { font-size: 1.1em; margin-top: 1.3em; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em;
       background: #f6f8fa; padding: .1em .3em; border-radius: 4px; overflow-wrap: anywhere; }
pre { background: #f6f8fa; padding: 12px 16px; border-radius: 6px; overflow-x: auto; }
pre code { padding: 0; background: none; }
table { border-collapse: collapse; margin: 12px 0; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; }
th { background: #f6f8fa; }
tbody tr:nth-child(even) { background: #fbfcfd; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
a { color: #0969da; }
.missing { display: inline-block; color: #9a3412; background: #fff7ed; border: 1px dashed #f97316;
           padding: 6px 10px; border-radius: 4px; }
footer { color: #656d76; font-size: .85em; margin-top: 40px; border-top: 1px solid #d0d7de; padding-top: 8px; }
"""


def markdown_to_html(markdown_text: str, base_dir: str | Path, title: str) -> str:
    """``markdown_text`` as one HTML page whose local images (and linked data files) under
    ``base_dir`` are embedded as ``data:`` URIs. ``title`` names the page, and heads it when the
    Markdown has no ``#`` heading of its own."""
    converter = markdown.Markdown(extensions=["tables", "fenced_code", "sane_lists"], output_format="html")
    converter.treeprocessors.register(_EmbedLocalFiles(converter, Path(base_dir)), "medmtl_embed", 5)
    body = converter.convert(markdown_text)
    if not body.lstrip().startswith("<h1"):
        body = f"<h1>{html.escape(title)}</h1>\n{body}"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
            f"<footer>Written by medmtl; figures are embedded in this file.</footer>\n</main>\n</body>\n</html>\n")


def write_html_report(md_path: str | Path, title: str | None = None) -> Path:
    """Write ``<name>.html`` beside the Markdown report ``md_path`` (``report.md`` → ``report.html``),
    atomically; returns its path. ``title`` defaults to the report's first ``#`` heading, else
    "medmtl comparison" for ``comparison.md`` and "medmtl report" otherwise."""
    md_path = Path(md_path)
    text = md_path.read_text(encoding="utf-8")
    if title is None:
        title = _first_heading(text) or ("medmtl comparison" if md_path.stem == "comparison" else "medmtl report")
    out = md_path.with_suffix(".html")
    atomic_write_text(out, markdown_to_html(text, md_path.parent, title))
    return out


def _first_heading(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _local_path(reference: str, base_dir: Path) -> Path | None:
    """The file a relative (or absolute) reference names; None for URLs (``http:``, ``data:``, …)
    and in-page anchors."""
    parts = urlsplit(reference)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return base_dir / unquote(parts.path)


class _EmbedLocalFiles(Treeprocessor):
    """Images → ``data:`` URIs (a missing one → a placeholder); remote images → plain links (the
    page loads nothing); links to small local data files → ``data:`` URIs with a download name."""

    def __init__(self, md: markdown.Markdown, base_dir: Path) -> None:
        super().__init__(md)
        self.base_dir = base_dir

    def run(self, root: etree.Element) -> None:
        for element in list(root.iter()):
            if element.tag == "img":
                self._image(element)
            elif element.tag == "a":
                self._link(element)

    def _image(self, img: etree.Element) -> None:
        src, alt = img.get("src", ""), img.get("alt", "")
        if src.startswith("data:"):
            return
        path = _local_path(src, self.base_dir)
        if path is None:  # a remote image: a link to it, nothing fetched
            img.tag, img.text = "a", alt or src
            img.attrib = {"href": src}
            return
        mime = _IMAGE_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            img.set("src", _data_uri(path, mime))
        except OSError:  # missing or unreadable: say so on the page
            img.tag, img.text = "span", f"[missing figure: {src}]"
            img.attrib = {"class": "missing", "title": alt}

    def _link(self, link: etree.Element) -> None:
        href = link.get("href", "")
        path = _local_path(href, self.base_dir)
        if path is None or path.suffix.lower() not in _LINK_TYPES:
            return
        try:
            if path.stat().st_size > MAX_EMBEDDED_LINK_BYTES:
                return
            link.set("href", _data_uri(path, _LINK_TYPES[path.suffix.lower()]))
        except OSError:  # a missing file: the relative link stays
            return
        link.set("download", path.name)
