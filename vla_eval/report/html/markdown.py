"""The Markdown the commands print (report.md, experiment.md, ...) as HTML for a page.

Only what those reports use: headings, pipe tables (``---:`` columns right-aligned),
bullet lists, paragraphs, fenced code, images on their own line (embedded from the
report's folder), and inline ``code``, **bold** and *italic*. Everything is escaped
before the inline marks are applied, so no text of a report can inject markup.
Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path

from vla_eval.report.html.page import esc, figure

_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def inline(text: str) -> str:
    """One line's text, escaped, with ``code``, **bold** and *italic* marks applied.

    >>> inline("**5/8** of `pick` <b>")
    '<strong>5/8</strong> of <code>pick</code> &lt;b&gt;'
    """
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])", r"<em>\1</em>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    header = _cells(lines[0])
    aligns = _cells(lines[1]) if len(lines) > 1 and set(lines[1]) <= set("|-: ") else []
    body = lines[2:] if aligns else lines[1:]
    right = {i for i, a in enumerate(aligns) if a.endswith(":")}

    def cell(tag: str, i: int, text: str) -> str:
        cls = ' class="num"' if i in right else ""
        return f"<{tag}{cls}>{inline(text)}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(header))
    rows = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(_cells(r))) + "</tr>" for r in body
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _image(alt: str, target: str, base: Path | None) -> str:
    path = (base / target) if base is not None else Path(target)
    if base is not None and path.is_file() and "://" not in target:
        return figure(path, alt)
    return f"<p>{esc(alt)} (<code>{esc(target)}</code>)</p>"


def markdown_html(text: str, base: str | Path | None = None, shift: int = 2) -> str:
    """Markdown as HTML.

    Args:
        text: the Markdown.
        base: the folder images are read from (they are embedded); None leaves them out.
        shift: heading levels added (``#`` becomes ``<h3>`` under a page's ``<h2>``).

    >>> markdown_html("# Title\\n\\n| a | n |\\n|---|---:|\\n| x | 2 |")  # doctest: +ELLIPSIS
    '<h3>Title</h3>\\n<div class="scroll"><table>...<td class="num">2</td>...'
    """
    base = Path(base) if base is not None else None
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines)
            )
            blocks.append("<pre>" + esc("\n".join(lines[i + 1 : end])) + "</pre>")
            i = end + 1
        elif m := _HEADING.match(stripped):
            level = min(len(m.group(1)) + shift, 6)
            blocks.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            i += 1
        elif m := _IMAGE.match(stripped):
            blocks.append(_image(m.group(1), m.group(2), base))
            i += 1
        else:
            i = _block(lines, i, blocks)
    return "\n".join(blocks)


def _block(lines: list[str], i: int, blocks: list[str]) -> int:
    """A table, a list or a paragraph starting at line `i`; returns the next line's index."""
    first = lines[i].strip()
    kind = "table" if first.startswith("|") else "list" if first.startswith("- ") else "p"
    j = i
    group: list[str] = []
    while j < len(lines) and lines[j].strip():
        s = lines[j].strip()
        if kind == "table" and not s.startswith("|"):
            break
        if kind == "list" and not s.startswith("- ") and group and not lines[j].startswith("  "):
            break
        if kind == "p" and (
            s.startswith(("|", "- ", "```")) or _HEADING.match(s) or _IMAGE.match(s)
        ):
            break
        group.append(s)
        j += 1
    if kind == "table":
        blocks.append(_table(group))
    elif kind == "list":
        items: list[str] = []
        for s in group:
            if s.startswith("- "):
                items.append(s[2:])
            else:
                items[-1] += " " + s
        blocks.append("<ul>" + "".join(f"<li>{inline(t)}</li>" for t in items) + "</ul>")
    else:
        blocks.append("<p>" + inline(" ".join(group)) + "</p>")
    return j
