"""One self-contained HTML page per result (``report.html``), readable on a laptop and printable.

A page is a title and a list of `Section`s; `write_html` assembles them with the one
stylesheet (screen and print) and writes the file atomically. Figures are embedded as
PNG data URIs and small videos as MP4 data URIs, so the page needs no network, no other
file and no JavaScript. `page` holds the generic parts (sections, tables, figures,
videos, provenance), `markdown` turns the Markdown the commands already print into
HTML, and `sections` builds the sections of success reports, comparisons and findings
from their result dictionaries. Standard library only (plus `vla_eval.results` and the
report's Markdown helpers); never imports numpy, matplotlib or torch.
"""

from vla_eval.report.html.markdown import markdown_html
from vla_eval.report.html.page import (
    Section,
    figure,
    figures_section,
    provenance_section,
    render_page,
    table,
    videos_section,
    write_html,
)
from vla_eval.report.html.sections import (
    comparison_sections,
    findings_section,
    report_sections,
    write_report_html,
)

__all__ = [
    "Section",
    "comparison_sections",
    "figure",
    "figures_section",
    "findings_section",
    "markdown_html",
    "provenance_section",
    "render_page",
    "report_sections",
    "table",
    "videos_section",
    "write_html",
    "write_report_html",
]
