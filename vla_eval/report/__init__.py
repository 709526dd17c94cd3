"""Success reports and policy comparisons from episode files.

`build_report` (in `success`) turns one policy's episodes into per-(task, split)
Wilson intervals, per-split pooled and macro rates, and the seen -> unseen gap;
`build_comparison` (in `compare`) tests two or more policies against each other and
ranks them. Both return strict-JSON-ready dicts (schemas ``vla-eval/report/2`` and
``vla-eval/compare/2``); `markdown` renders them for the terminal and `figures` draws
the report's forest plot. Depends on `vla_eval.episodes` and `vla_eval.stats`;
never imports torch, and the report path never imports scipy or matplotlib.
"""

from vla_eval.report.compare import COMPARE_SCHEMA, build_comparison, load_policies
from vla_eval.report.figures import plot_report
from vla_eval.report.markdown import format_comparison, format_report
from vla_eval.report.success import BY_FIELDS, REPORT_SCHEMA, build_report, parse_by

__all__ = [
    "BY_FIELDS",
    "COMPARE_SCHEMA",
    "REPORT_SCHEMA",
    "build_comparison",
    "build_report",
    "format_comparison",
    "format_report",
    "load_policies",
    "parse_by",
    "plot_report",
]
