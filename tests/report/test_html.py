"""report.html: one self-contained page per result, checked in a real browser.

The browser test renders the page of a real quickstart-style run (the session's smoke
run, evaluated offline and online by `vla-eval quickstart`) in headless Chromium and
checks what a person would: no console errors, every image decodes, the success
table shows report.json's numbers, and a 1280-px-wide screenshot is not blank. The
other tests check the page builders and that every command's --out writes its page.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from vla_eval.cli import main

ROOT = Path(__file__).parents[2]
SMOKE = ROOT / "protocols" / "smoke.toml"
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def quickstart_dir(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickstart folder: the session's smoke run, evaluated offline and online."""
    out = tmp_path_factory.mktemp("qs") / "qs"
    shutil.copytree(smoke_run, out / "train")
    assert main(["quickstart", "--protocol", str(SMOKE), "--out", str(out), "--no-progress"]) == 0
    return out


def _open_in_browser(page_path: Path, width: int = 1280):
    """Load a page in headless Chromium -> (page facts, console errors, screenshot PNG)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run the README's test command (bash scripts/test.sh), "
            "which installs Debian's chromium for this test"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: run the README's test command (bash scripts/test.sh)")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(("file:", "data:"))
                    else errors.append(f"network request {r.url}")
                ),
            )
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            facts = page.evaluate(
                """() => ({
                  images: Array.from(document.images).map(i => [i.complete, i.naturalWidth]),
                  table: Array.from(document.querySelectorAll('#success-table tbody tr')).map(
                    r => Array.from(r.cells).map(c => c.textContent)),
                  scrollWidth: document.documentElement.scrollWidth,
                  scripts: document.scripts.length,
                })"""
            )
            shot = page.screenshot(full_page=True)
            page.emulate_media(media="print")  # printable: the print stylesheet applies
            facts["print_nav"] = page.evaluate(
                "getComputedStyle(document.querySelector('nav.toc')).display"
            )
        finally:
            browser.close()
    return facts, errors, shot


@pytest.mark.slow
def test_quickstart_page_in_a_real_browser(quickstart_dir: Path) -> None:
    page = quickstart_dir / "report.html"
    report = json.loads((quickstart_dir / "report.json").read_text())
    facts, errors, shot = _open_in_browser(page)
    assert errors == []
    assert facts["scripts"] == 0  # no JavaScript needed
    assert facts["print_nav"] == "none"  # printed, the page drops its navigation
    pngs = sorted(p.name for p in quickstart_dir.glob("*.png"))
    assert len(facts["images"]) == len(pngs) >= 4  # every figure is on the page
    assert all(done and width > 0 for done, width in facts["images"])
    assert facts["scrollWidth"] <= 1280  # nothing forces sideways scrolling on a laptop
    # The success table holds report.json's counts, and rates that match them.
    expected = {
        (g["task"], g["split"]): (g["successes"], g["trials"], g["lower"], g["upper"])
        for g in report["online"]["groups"]
    }
    shown = {}
    for task, split, k, n, rate, ci in facts["table"]:
        lo, hi = (float(x) / 100 for x in re.findall(r"[\d.]+", ci))
        shown[(task, split)] = (int(k), int(n), lo, hi)
        assert float(rate.rstrip("%")) == pytest.approx(100 * int(k) / int(n), abs=0.05)
    assert shown.keys() == expected.keys()
    for key, (k, n, lo, hi) in shown.items():
        ek, en, elo, ehi = expected[key]
        assert (k, n) == (ek, en)
        assert lo == pytest.approx(elo, abs=0.0005) and hi == pytest.approx(ehi, abs=0.0005)
    # The screenshot shows something: its pixels vary (a blank page is one colour).
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
    assert pixels.shape[1] == 1280
    assert pixels.std() > 20


@pytest.mark.slow
def test_quickstart_page_is_self_contained(quickstart_dir: Path) -> None:
    text = (quickstart_dir / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', text)
    assert sources and all(s.startswith("data:") for s in sources), sources[:3]
    for heading in ("Offline: held-out demonstrations", "Success rates", "Findings", "Provenance"):
        assert f">{heading}</h2>" in text
    assert "@media print" in text
    for item in ("command", "versions", "seeds", "protocol"):  # provenance
        assert f"<dt>{item}</dt>" in text


class _Cells(__import__("html.parser").parser.HTMLParser):
    """The cells of the table with a given id, as text (a parser, not a browser)."""

    def __init__(self, anchor: str) -> None:
        super().__init__()
        self.anchor, self.inside, self.rows = anchor, False, []

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("id", self.anchor) in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.inside and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def _table(page: Path, anchor: str) -> list[list[str]]:
    parser = _Cells(anchor)
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.rows


def _write_episodes(path: Path, counts: dict, policy: str) -> Path:
    rows = [
        {"policy": policy, "task": task, "split": split, "seed": s, "success": s < k}
        for (task, split), (k, n) in counts.items()
        for s in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    return path


COUNTS = {("task-10", "seen"): (3, 4), ("task-2", "unseen"): (1, 5), ("task-2", "seen"): (5, 5)}


def test_report_out_writes_markdown_and_page(tmp_path, capsys):
    episodes = _write_episodes(tmp_path / "e.jsonl", COUNTS, "ckpt<1>")
    assert main(["report", str(episodes), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "out"
    assert (out / "report.md").read_text(encoding="utf-8") == printed  # what it printed
    rows = _table(out / "report.html", "success-table")
    # rows by task name (task-2 before task-10), then split; counts as given
    assert [r[:4] for r in rows[1:]] == [
        ["task-2", "seen", "5", "5"],
        ["task-2", "unseen", "1", "5"],
        ["task-10", "seen", "3", "4"],
    ]
    assert rows[2][4] == "20.0%"
    # Wilson 1/5 by hand: z^2 = 3.84146, centre (1 + 1.92073) / 8.84146 = 0.33034,
    # half-width 1.95996 / 8.84146 * sqrt(1 * 4 / 5 + 0.96036) = 0.29412 -> 3.6-62.4%
    assert rows[2][5] == "3.6–62.4%"
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "ckpt&lt;1&gt;" in text and "ckpt<1>" not in text  # names are escaped
    assert text.count("data:image/png;base64,") == 1


def test_compare_out_writes_markdown_figure_and_page(tmp_path, capsys):
    a = _write_episodes(tmp_path / "a.jsonl", {("pick", "seen"): (2, 10)}, "a")
    b = _write_episodes(tmp_path / "b.jsonl", {("pick", "seen"): (9, 10)}, "b")
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "cmp"
    assert (folder / "compare.md").read_text(encoding="utf-8") == printed
    assert (folder / "compare.png").read_bytes()[:4] == b"\x89PNG"
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<h2>Comparison</h2>" in page and "<h2>Provenance</h2>" in page
    assert "9/10" in page and "2/10" in page
    assert not list(folder.glob(".*tmp*"))  # written atomically: no temporary files left


def test_offline_predictions_out_writes_a_page(tmp_path, capsys):
    rng = np.random.default_rng(0)
    target = rng.uniform(-1, 1, (50, 3))
    np.savez(tmp_path / "p.npz", target_actions=target, pred_actions=target)
    out = tmp_path / "off"
    assert main(["offline", "--predictions", str(tmp_path / "p.npz"), "--out", str(out)]) == 0
    rows = _table(out / "report.html", "offline-table")
    assert rows[1][:4] == ["overall", "150", "—", "100.0%"]  # 50 x 3 entries, all exact


def test_videos_are_embedded_when_small_and_linked_when_large(tmp_path, monkeypatch):
    from vla_eval.report.html import page as html_page

    small, large = tmp_path / "v" / "a.mp4", tmp_path / "v" / "b.mp4"
    small.parent.mkdir()
    small.write_bytes(b"\x00" * 10)
    large.write_bytes(b"\x00" * 100)
    monkeypatch.setattr(html_page, "MAX_EMBEDDED_VIDEO", 50)
    section = html_page.videos_section([large, small, tmp_path / "missing.mp4"], tmp_path)
    assert section.body.count("<video") == 2
    assert 'src="data:video/mp4;base64,AAAAAAAAAAAAAA=="' in section.body  # 10 zero bytes
    assert 'src="v/b.mp4"' in section.body  # relative to the page's folder
    assert html_page.videos_section([tmp_path / "none.mp4"], tmp_path) is None


def test_markdown_tables_lists_and_marks_become_html():
    from vla_eval.report.html import markdown_html

    md = "## Pairs\n\n| a | p |\n|---|---:|\n| x<y | 0.5 |\n\n- **b** `c` *d*\n- e\n  f\n\nend"
    html = markdown_html(md)
    assert html.startswith("<h4>Pairs</h4>")
    assert '<td>x&lt;y</td><td class="num">0.5</td>' in html
    assert "<li><strong>b</strong> <code>c</code> <em>d</em></li><li>e f</li>" in html
    assert html.endswith("<p>end</p>")


@pytest.mark.slow
def test_experiment_page_embeds_every_figure(tmp_path, capsys, smoke_run):
    """`vla-eval run` writes report.html beside experiment.md: its tables, every figure
    (with Wilson intervals on the offline bars), findings and provenance."""
    from vla_eval.experiment.run import variant_dir

    out = tmp_path / "exp"
    for i, variant in enumerate(["one-stage", "three-stage"], 1):
        shutil.copytree(smoke_run, variant_dir(out, i, variant) / "train")
    argv = ["run", str(ROOT / "protocols" / "stage_ablation.toml"), "--smoke", "--out", str(out)]
    assert main([*argv, "--resume", "--no-progress"]) == 0
    assert f"wrote {out}/report.html" in capsys.readouterr().out
    result = json.loads((out / "experiment.json").read_text())
    facts, errors, _ = _open_in_browser(out / "report.html")
    assert errors == []
    assert len(facts["images"]) == len(result["figures"]) == 3
    assert all(done and width > 0 for done, width in facts["images"])
    text = (out / "report.html").read_text(encoding="utf-8")
    for heading in ("Results", "Findings", "Provenance"):
        assert f"<h2>{heading}</h2>" in text


def test_task_groups_are_rendered_when_present(tmp_path, capsys):
    """Episodes naming a task group (a suite) get a per-group table, by group name."""
    rows = [
        {"task": t, "group": g, "split": "seen", "seed": s, "success": s < k}
        for g, t, k in (("spatial", "t1", 3), ("spatial", "t2", 1), ("object", "t3", 0))
        for s in range(4)
    ]
    episodes = tmp_path / "g.jsonl"
    episodes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(episodes), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| object | seen | 1 | 0/4 |" in printed
    assert "| spatial | seen | 2 | 4/8 | 50.0% (21.5–78.5%) |" in printed  # Wilson 4/8
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Task groups</h2>" in page
    assert page.index("<td>object</td>") < page.index("<td>spatial</td>")


def test_online_html_writes_one_page_with_its_table_figure_and_videos(tmp_path, capsys):
    out = tmp_path / "pick.jsonl"
    argv = ["online", "expert", "--trials", "3", "--tasks", "pick", "--out", str(out)]
    assert main([*argv, "--videos", "1", "--html", "--json", "--no-progress"]) == 0
    body = json.loads(capsys.readouterr().out)
    page = Path(body["report_page"])
    assert page == tmp_path / "pick.report.html" and (tmp_path / "pick.forest.png").is_file()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [
        [
            task,
            split,
            str(sum(r["success"] for r in records if (r["task"], r["split"]) == (task, split))),
            "3",
        ]
        for task, split in (("pick", "seen"), ("pick", "unseen"))
    ]
    assert [r[:4] for r in _table(page, "success-table")[1:]] == expected
    text = page.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 1
    assert text.count("<video") == len(body["videos"]["files"]) == 2  # one per (task, split)
