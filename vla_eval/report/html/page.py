"""The generic parts of a report page: sections, tables, embedded figures and videos, provenance.

Everything a page shows is escaped here or in the section builders; the page embeds
its figures (PNG data URIs) and small videos, links larger videos by a path relative
to the page, and loads nothing from the network. Standard library and
`vla_eval.results` only.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Videos up to this size are embedded in the page; larger ones are linked beside it.
MAX_EMBEDDED_VIDEO = 8 * 1024 * 1024

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
VIDEO_MIME = {".mp4": "video/mp4", ".webm": "video/webm"}

STYLE = """
:root { --ink: #1d2430; --muted: #5b6473; --line: #d8dde6; --band: #f4f6f9; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
header.page { border-bottom: 2px solid var(--line); margin-bottom: 1rem; }
h1 { font-size: 1.55rem; margin: 0.4rem 0 0.2rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.6rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.4rem 0 0.4rem; }
p.sub { color: var(--muted); margin: 0 0 0.8rem; }
nav.toc { font-size: 0.9rem; margin: 0 0 1rem; }
nav.toc a { margin-right: 1rem; color: var(--accent); text-decoration: none; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.9rem; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 0.3rem; }
th, td { border-bottom: 1px solid var(--line); padding: 0.28rem 0.7rem; text-align: left;
  vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure video { max-width: 100%; }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 0.3rem; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.85rem; }
pre { background: var(--band); padding: 0.7rem; overflow-x: auto; }
.finding { border-left: 4px solid #c77700; padding: 0.3rem 0.8rem; margin: 0.6rem 0;
  background: #fff8ec; }
.finding.critical { border-color: #b3261e; background: #fdf0ef; }
.finding .fix { margin-top: 0.25rem; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.prov dt { color: var(--muted); }
dl.prov dd { margin: 0; overflow-wrap: anywhere; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav.toc, video { display: none; }
  h2 { break-after: avoid; }
  figure, table, .finding { break-inside: avoid; }
  .scroll { overflow: visible; }
  a { color: inherit; }
  @page { margin: 14mm; }
}
"""


@dataclass(frozen=True)
class Section:
    """One titled part of a page: `body` is HTML, already escaped."""

    title: str
    body: str
    anchor: str = ""

    @property
    def slug(self) -> str:
        """The section's anchor: given, else from its title."""
        return self.anchor or re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def esc(value: object) -> str:
    """Text for HTML (``<``, ``&`` and quotes escaped)."""
    return html.escape(str(value), quote=True)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Iterable[int] = (),
    caption: str = "",
    anchor: str = "",
) -> str:
    """An HTML table; columns in `numeric` are right-aligned with tabular digits.

    >>> table(["task", "n"], [["pick", 20]], numeric=[1])  # doctest: +ELLIPSIS
    '<div class="scroll"><table>...<td>pick</td><td class="num">20</td>...'
    """
    num = set(numeric)

    def cls(i: int) -> str:
        return ' class="num"' if i in num else ""

    head = "".join(f'<th{cls(i)} scope="col">{esc(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    ident = f' id="{esc(anchor)}"' if anchor else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table{ident}>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def data_uri(path: str | os.PathLike[str], mime: str) -> str:
    """A file's bytes as a ``data:`` URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:{mime};base64,{data}"


def figure(path: str | os.PathLike[str], caption: str = "", alt: str = "") -> str:
    """A figure embedded in the page (PNG, JPEG or SVG as a data URI), with its caption."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower(), "image/png")
    text = caption or path.name
    return (
        f'<figure><img src="{data_uri(path, mime)}" alt="{esc(alt or text)}" loading="eager">'
        f"<figcaption>{esc(text)}</figcaption></figure>"
    )


def figures_section(
    paths: Iterable[str | os.PathLike[str]],
    captions: Mapping[str, str] | None = None,
    title: str = "Figures",
) -> Section | None:
    """Every existing figure, embedded; `captions` by file name. None when there is none."""
    found = [Path(p) for p in paths if Path(p).is_file()]
    if not found:
        return None
    body = "".join(figure(p, (captions or {}).get(p.name, p.name)) for p in found)
    return Section(title, body)


def video(path: str | os.PathLike[str], page_dir: str | os.PathLike[str]) -> str:
    """A rollout video: embedded when small (`MAX_EMBEDDED_VIDEO`), else linked relative
    to the page's folder (keep the video beside the page when sharing it)."""
    path = Path(path)
    mime = VIDEO_MIME.get(path.suffix.lower(), "video/mp4")
    size = path.stat().st_size
    if size <= MAX_EMBEDDED_VIDEO:
        src, label = data_uri(path, mime), esc(path.name)
    else:
        src = esc(Path(os.path.relpath(path, page_dir)).as_posix())
        label = (
            f'<a href="{src}">{esc(path.name)}</a> ({size / 2**20:.0f} MiB, linked: keep it '
            "beside this page)"
        )
    return (
        f'<figure><video controls preload="metadata" src="{src}"></video>'
        f"<figcaption>{label}</figcaption></figure>"
    )


def videos_section(
    paths: Iterable[str | os.PathLike[str]], page_dir: str | os.PathLike[str]
) -> Section | None:
    """The rollout videos that exist, or None."""
    found = sorted(Path(p) for p in paths if Path(p).is_file())
    if not found:
        return None
    return Section("Rollout videos", "".join(video(p, page_dir) for p in found))


def provenance_section(
    prov: Mapping[str, Any] | None, extra: Mapping[str, Any] | None = None
) -> Section:
    """Where the result came from: command line, versions, seeds, time (and `extra` items)."""
    prov = dict(prov or {})
    items: list[tuple[str, str]] = []
    command = prov.get("command")
    if command:
        items.append(("command", " ".join(str(c) for c in command)))
    for key, value in (extra or {}).items():
        items.append((key, str(value)))
    versions = prov.get("versions") or {}
    if versions:
        items.append(
            ("versions", ", ".join(f"{k} {v or 'not installed'}" for k, v in versions.items()))
        )
    seeds = prov.get("seeds") or {}
    items.append(("seeds", ", ".join(f"{k} {v}" for k, v in seeds.items()) or "none used"))
    if prov.get("created"):
        items.append(("created", str(prov["created"])))
    rows = "".join(f"<dt>{esc(k)}</dt><dd><code>{esc(v)}</code></dd>" for k, v in items)
    return Section("Provenance", f'<dl class="prov">{rows}</dl>')


def render_page(title: str, sections: Iterable[Section | None], subtitle: str = "") -> str:
    """The whole page as text: head with the stylesheet, a table of contents, the sections."""
    parts = [s for s in sections if s is not None]
    toc = "".join(f'<a href="#{esc(s.slug)}">{esc(s.title)}</a>' for s in parts)
    body = "".join(
        f'<section id="{esc(s.slug)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in parts
    )
    sub = f'<p class="sub">{esc(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f'<body><main><header class="page"><h1>{esc(title)}</h1>{sub}'
        f'<nav class="toc">{toc}</nav></header>{body}</main></body></html>\n'
    )


def write_html(
    path: str | os.PathLike[str],
    title: str,
    *sections: Section | None,
    subtitle: str = "",
) -> Path:
    """Write one self-contained page atomically; None sections are left out.

    Args:
        path: the ``.html`` file to write (its folder must exist).
        title: the page's title and heading.
        sections: the parts of the page, in order (see `Section` and the builders).
        subtitle: one line under the title.

    Returns:
        The written path.
    """
    from vla_eval.results import write_text

    return write_text(path, render_page(title, sections, subtitle))
