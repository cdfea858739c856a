"""The report page: :class:`~stvg.report.gather.ReportData` -> one self-contained HTML string.

The page needs no network and no server: CSS and JS are inlined (``static/``), frame images are
files next to it (relative links). Every piece of text that comes from the user's files
(captions, ids, paths, group names, labels) goes through :func:`esc`; the script reads nothing
but ``data-*`` attributes, so no user text ever sits inside a ``<script>``.

Sections: the score tables (one per protocol: rows are :func:`~stvg.evaluate.score.score`'s
groups, columns its metrics in %, one sub-column per run, formatted as ``stvg score`` prints
them); the sample list (one row per sample, sortable by any column; vIoU, tIoU and sIoU of every
run under the first protocol, and each further run's vIoU minus the first run's); then one
block per sample (:mod:`stvg.report.sample_block`).
"""

from __future__ import annotations

from importlib import resources

from stvg.evaluate.protocols import DESCRIPTIONS, SampleScore
from stvg.evaluate.score import METRICS
from stvg.report.gather import ReportData, SampleView
from stvg.report.markup import (
    GT_COLOR,
    SAMPLE_METRICS,
    classes,
    esc,
    run_color,
    score_cell,
    swatch,
)
from stvg.report.sample_block import sample_block


def _static(name: str) -> str:
    return resources.files("stvg.report").joinpath("static", name).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- head and legend


def _run_css(n_runs: int) -> str:
    rules = []
    for r in range(n_runs):
        rules.append(f".run-{r} {{ --c: {run_color(r)}; }}")
        rules.append(
            f".hide-run-{r} .frame-box .run-{r}, .hide-run-{r} .tl-row.run-{r}, "
            f".hide-run-{r} figcaption .run-{r} {{ display: none; }}"
        )
    return f":root {{ --gt: {GT_COLOR}; }}\n" + "\n".join(rules)


def _header(data: ReportData) -> str:
    ann = data.annotations
    facts = [
        f"annotations <code>{esc(data.annotations_path.name)}</code>",
        f"{esc(ann.dataset)} / {esc(ann.split)}",
        f"{len(data.samples)} samples",
        f"grouped by <code>{esc(data.group_by)}</code>",
    ]
    if not ann.has_boxes:
        facts.append("sentence-only annotations (no boxes)")
    items = [f'<li class="gt">{swatch("gt")} ground truth</li>']
    for r, run in enumerate(data.runs):
        count = len(run.predictions.by_id)
        items.append(
            f'<li class="run-{r}">{swatch(f"run-{r}")} <b>{esc(run.label)}</b> '
            f'<span class="file">{esc(run.path.name)}, {count} tubes</span> '
            f'<label><input type="checkbox" checked data-run-toggle="{r}"> show'
            f'<span class="visually-hidden"> the boxes and span of {esc(run.label)}</span>'
            "</label></li>"
        )
    return (
        "<header>\n<h1>stvg report</h1>\n"
        f'<p class="meta">{" &middot; ".join(facts)}</p>\n'
        f'<ul class="legend" aria-label="Colors">{"".join(items)}</ul>\n</header>'
    )


# ----------------------------------------------------------------------------- score tables


def _score_table(data: ReportData, protocol: str) -> str:
    results = data.tables[protocol]
    n_runs = len(results)
    metrics = [m for m in METRICS if m != "count"]
    groups = list(results[0])
    head = ['<th class="text" scope="col"' + (' rowspan="2"' if n_runs > 1 else "") + ">group</th>"]
    for m in metrics:
        span = f' colspan="{n_runs}" class="run-head"' if n_runs > 1 else ""
        head.append(f'<th scope="col"{span}>{esc(m)}</th>')
    head.append(
        '<th scope="col" class="count"' + (' rowspan="2"' if n_runs > 1 else "") + ">count</th>"
    )
    rows = ["<tr>" + "".join(head) + "</tr>"]
    if n_runs > 1:
        sub = []
        for _ in metrics:
            for r, run in enumerate(data.runs):
                first = " first-of-run" if r == 0 else ""
                sub.append(
                    f'<th scope="col" class="run-{r}{first}">{swatch(f"run-{r}")} '
                    f"{esc(run.label)}</th>"
                )
        rows.append("<tr>" + "".join(sub) + "</tr>")
    body = []
    for group in groups:
        cells = [f'<td class="group">{esc(group)}</td>']
        for m in metrics:
            values = [results[r][group][m] for r in range(n_runs)]
            shown = [score_cell(v) for v in values]
            numbers = [float(s) for s in shown if s != "-"]
            differ = len(set(numbers)) > 1  # a tie of every run is no "best"
            best = max(numbers) if differ else None
            for r, text in enumerate(shown):
                cls = ["first-of-run"] if r == 0 and n_runs > 1 else []
                if best is not None and text != "-" and float(text) == best:
                    cls.append("best")
                attr = f' class="{" ".join(cls)}"' if cls else ""
                cells.append(f"<td{attr}>{text}</td>")
        cells.append(f'<td class="count">{score_cell(results[0][group]["count"])}</td>')
        cls = ' class="all"' if group == "all" else ""
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    note = ""
    if any(results[0][g]["m_vIoU"] is None for g in groups):
        note = (
            '<p class="hint">Sentence-only annotations: only m_tIoU can be computed; give the box '
            "annotations for vIoU and sIoU.</p>"
        )
    return (
        f"<h3>{esc(protocol)} <small>{esc(DESCRIPTIONS.get(protocol, ''))}</small></h3>\n"
        f'<div class="table-wrap"><table class="scores" data-protocol="{esc(protocol)}">'
        f"<thead>{''.join(rows)}</thead><tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def _scores_section(data: ReportData) -> str:
    tables = "\n".join(_score_table(data, p) for p in data.protocols)
    return (
        '<section id="scores" aria-labelledby="scores-title">\n'
        '<h2 id="scores-title">Scores</h2>\n'
        '<p class="hint">Values in %, as <code>stvg score</code> prints them; vIoU@R counts '
        "vIoU &gt; R. With several runs the best value of a row is bold.</p>\n"
        f"{tables}\n</section>"
    )


# ----------------------------------------------------------------------------- sample list


def _sort_th(col: int, label: str, numeric: bool, cls: str = "", sort_label: str = "") -> str:
    kind = "num" if numeric else "text"
    classes = f' class="{cls}"' if cls else ""
    return (
        f'<th scope="col"{classes} data-col="{col}" data-type="{kind}" '
        f'data-label="{esc(sort_label or label)}" aria-sort="none">'
        f'<button type="button">{label}</button></th>'
    )


def _metric_td(score: SampleScore, key: str, has_prediction: bool, first: bool) -> str:
    value = getattr(score, key)
    cls = ["first-of-run"] if first else []
    if value is None:
        return f'<td data-value=""{classes(cls)}>-</td>'
    title = ""
    if not has_prediction:
        cls.append("missing")
        title = ' title="no prediction: scored 0"'
    return f'<td data-value="{value!r}"{classes(cls)}{title}>{100 * value:.1f}</td>'


def _delta_td(view: SampleView, r: int, protocol: str) -> str:
    a, b = view.scores[0][protocol].viou, view.scores[r][protocol].viou
    if a is None or b is None:
        return '<td data-value="">-</td>'
    d = b - a
    sign = "pos" if d > 0 else "neg" if d < 0 else ""
    text = f"{100 * d:+.1f}" if d else "0.0"
    return f'<td data-value="{d!r}"{classes([sign] if sign else [])}>{text}</td>'


def _samples_section(data: ReportData) -> str:
    protocol = data.protocols[0]
    n_runs = len(data.runs)
    two_rows = n_runs > 1
    rowspan = ' rowspan="2"' if two_rows else ""
    fixed = [
        ("#", True, "", "order"),
        ("sample", False, "text", "sample"),
        ("caption", False, "text", "caption"),
        ("group", False, "text", "group"),
    ]
    top: list[str] = []
    sub: list[str] = []
    col = 0
    for label, numeric, cls, sort_label in fixed:
        th = _sort_th(col, label, numeric, cls, sort_label)
        top.append(th.replace("<th ", f"<th{rowspan} ", 1) if two_rows else th)
        col += 1
    for r, run in enumerate(data.runs):
        target = sub if two_rows else top
        for k, (_, name) in enumerate(SAMPLE_METRICS):
            label = f"{run.label} {name}" if two_rows else name
            cls = f"run-{r} first-of-run" if k == 0 and two_rows else ""
            target.append(_sort_th(col, name, True, cls, label))
            col += 1
        if two_rows:
            top.append(
                f'<th scope="colgroup" colspan="3" class="run-head run-{r}">'
                f"{swatch(f'run-{r}')} {esc(run.label)}</th>"
            )
    for r in range(1, n_runs):
        label = f"&Delta; vIoU {esc(data.runs[r].label)} &minus; {esc(data.runs[0].label)}"
        sort_label = f"vIoU difference, {data.runs[r].label} minus {data.runs[0].label}"
        th = _sort_th(col, label, True, "first-of-run", sort_label)
        top.append(th.replace("<th ", f"<th{rowspan} ", 1))
        col += 1
    head = "<tr>" + "".join(top) + "</tr>" + ("<tr>" + "".join(sub) + "</tr>" if sub else "")
    rows = []
    for view in data.samples:
        s = view.sample
        cells = [
            f'<td data-value="{view.index}">{view.index + 1}</td>',
            f'<td class="text"><a href="#s{view.index:05d}">{esc(s.sample_id)}</a></td>',
            f'<td class="text caption" title="{esc(s.caption)}">{esc(s.caption)}</td>',
            f'<td class="text">{esc(view.group)}</td>',
        ]
        for r in range(n_runs):
            score = view.scores[r][protocol]
            has = view.predictions[r] is not None
            for k, (key, _) in enumerate(SAMPLE_METRICS):
                cells.append(_metric_td(score, key, has, k == 0 and two_rows))
        cells += [_delta_td(view, r, protocol) for r in range(1, n_runs)]
        rows.append(
            f'<tr data-order="{view.index}" data-id="{esc(s.sample_id)}">'
            + "".join(cells)
            + "</tr>"
        )
    return (
        '<section id="samples" aria-labelledby="samples-title">\n'
        '<h2 id="samples-title">Samples</h2>\n'
        f'<p class="hint">{len(data.samples)} samples, scored with <code>{esc(protocol)}</code>; '
        "values in %. Click a column header (or focus it and press Enter) to sort, again to "
        "reverse; click a sample to see its frames.</p>\n"
        '<p id="sort-status" class="visually-hidden" aria-live="polite"></p>\n'
        '<div class="samples-wrap"><table id="sample-table" class="samples sortable" '
        'data-status="sort-status">'
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>\n</section>"
    )


# ----------------------------------------------------------------------------- the page


def render_report(data: ReportData) -> str:
    """The whole page as one HTML string (UTF-8, no external resource but the frame files)."""
    title = f"stvg report: {data.annotations_path.name}"
    blocks = "\n".join(sample_block(v, data) for v in data.samples)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n"
        f"<style>\n{_static('report.css')}\n{_run_css(len(data.runs))}\n</style>\n"
        "</head>\n<body>\n"
        f"{_header(data)}\n<main>\n{_scores_section(data)}\n{_samples_section(data)}\n"
        '<section id="details" aria-labelledby="details-title">\n'
        '<h2 id="details-title">Per sample</h2>\n'
        f"{blocks}\n</section>\n</main>\n"
        f"<script>\n{_static('report.js')}</script>\n</body>\n</html>\n"
    )
