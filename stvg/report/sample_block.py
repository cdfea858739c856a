"""One sample's block of the report: facts, scores per run, a timeline of the spans, the frames.

Geometry (the tests check it by hand): on a timeline of segment ``[s0, s1)`` a frame ``f`` sits
at ``100 * (f - s0) / (s1 - s0)`` % of the track; a span ``[a, b)`` (clipped to the segment) is
a bar ``left = pct(a)``, ``width = pct(b) - pct(a)``; a shown frame's tick is at ``pct(f +
0.5)``. A box ``[x1, y1, x2, y2]`` is ``<rect x=x1 y=y1 width=x2-x1 height=y2-y1>`` in an SVG
whose ``viewBox`` is ``0 0 W H``, the annotation's frame size. Ground-truth boxes are drawn on
the frames that have one; a run's box solid inside its predicted span (the boxes vIoU uses) and
dashed outside it (the ``tubedetr`` sIoU uses those too).
"""

from __future__ import annotations

from collections.abc import Sequence

from stvg.data.sample import Sample, Span
from stvg.evaluate.boxes import box_iou_xyxy
from stvg.evaluate.predictions import Prediction
from stvg.report.gather import ReportData, SampleView
from stvg.report.markup import SAMPLE_METRICS, esc, num, span_text, swatch


def _pct(frame: float, segment: Span) -> float:
    return 100.0 * (frame - segment[0]) / max(segment[1] - segment[0], 1)


def _bar(span: Span | None, segment: Span, cls: str, title: str) -> str:
    if span is None:
        return ""
    a, b = max(span[0], segment[0]), min(span[1], segment[1])
    if b <= a:
        return ""
    left, right = _pct(a, segment), _pct(b, segment)
    return (
        f'<div class="tl-span {cls}" style="left:{num(left)}%;width:{num(right - left)}%" '
        f'title="{esc(title)}"></div>'
    )


def _timeline(view: SampleView, data: ReportData) -> str:
    s = view.sample
    seg = s.segment
    protocol = data.protocols[0]
    rows = [
        '<div class="tl-row gt"><span class="tl-label">'
        f'{swatch("gt")} ground truth</span><div class="tl-track">'
        f"{_bar(s.tube, seg, 'gt', 'GT ' + span_text(s.tube))}</div>"
        f'<span class="tl-text">{span_text(s.tube)}</span></div>'
    ]
    for r, run in enumerate(data.runs):
        pred = view.predictions[r]
        tube = pred.tube if pred is not None else None
        if tube is None:
            text = "no prediction"
        else:
            tiou = view.scores[r][protocol].tiou
            text = f"{span_text(tube)} &middot; tIoU {100 * tiou:.1f}"
        title = f"{run.label} " + (span_text(tube) if tube is not None else "none")
        rows.append(
            f'<div class="tl-row run-{r}"><span class="tl-label" title="{esc(run.label)}">'
            f'{swatch(f"run-{r}")} {esc(run.label)}</span><div class="tl-track">'
            f'{_bar(tube, seg, f"run-{r}", title)}</div><span class="tl-text">{text}</span></div>'
        )
    ticks = "".join(
        f'<i class="tl-tick" style="left:{num(_pct(f + 0.5, seg))}%" title="frame {f}"></i>'
        for f in view.frame_ids
    )
    rows.append(
        '<div class="tl-row tl-axis"><span class="tl-label">frames</span>'
        f'<div class="tl-track">{ticks}<span class="tl-end">{seg[0]}</span>'
        f'<span class="tl-end right">{seg[1]}</span></div>'
        f'<span class="tl-text">segment {span_text(seg)}, {s.fps:g} fps</span></div>'
    )
    label = f"Timeline of segment {span_text(seg)}: ground truth {span_text(s.tube)}" + "".join(
        f", {run.label} "
        + (span_text(p.tube) if (p := view.predictions[r]) is not None else "no prediction")
        for r, run in enumerate(data.runs)
    )
    return (
        f'<div class="timeline" role="group" aria-label="{esc(label)}">' + "".join(rows) + "</div>"
    )


def _rect(box: Sequence[float], cls: str) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    geometry = f'x="{num(x1)}" y="{num(y1)}" width="{num(x2 - x1)}" height="{num(y2 - y1)}"'
    return f'<rect class="halo {cls}" {geometry}/><rect class="box {cls}" {geometry}/>'


def _in_span(frame: int, span: Span) -> bool:
    return span[0] <= frame < span[1]


def _frame_figure(view: SampleView, frame_id: int, image: str, data: ReportData) -> str:
    s: Sample = view.sample
    rects, ious = [], []
    for r in range(len(data.runs)):
        pred: Prediction | None = view.predictions[r]
        box = pred.boxes.get(frame_id) if pred is not None else None
        if box is None:
            continue
        inside = _in_span(frame_id, pred.tube)
        rects.append(_rect(box, f"run-{r}" + ("" if inside else " out")))
        gt = s.boxes.get(frame_id)
        if gt is not None and inside:
            ious.append(
                f'<span class="iou run-{r}" title="box IoU with GT, {esc(data.runs[r].label)}">'
                f"{swatch(f'run-{r}')}{box_iou_xyxy(gt, box):.2f}</span>"
            )
    gt = s.boxes.get(frame_id)
    if gt is not None:
        rects.append(_rect(gt, "gt"))  # drawn last: on top
    in_gt = " in-gt" if _in_span(frame_id, s.tube) else ""
    return (
        f'<figure class="frame" data-frame="{frame_id}"><div class="frame-box">'
        f'<img src="{esc(image)}" alt="frame {frame_id}" width="{s.width}" height="{s.height}" '
        f'loading="lazy"><svg viewBox="0 0 {s.width} {s.height}" preserveAspectRatio="none" '
        f'aria-hidden="true">{"".join(rects)}</svg></div>'
        f'<figcaption><span class="fid{in_gt}">#{frame_id}</span>{"".join(ious)}</figcaption>'
        "</figure>"
    )


def _sample_scores(view: SampleView, data: ReportData) -> str:
    several = len(data.protocols) > 1
    head = '<th class="text" scope="col">run</th>' + "".join(
        f'<th scope="col">{name}' + (f" <small>{esc(p)}</small>" if several else "") + "</th>"
        for p in data.protocols
        for _, name in SAMPLE_METRICS
    )
    rows = []
    for r, run in enumerate(data.runs):
        cells = [f'<td class="text">{swatch(f"run-{r}")} {esc(run.label)}</td>']
        for p in data.protocols:
            score = view.scores[r][p]
            for key, _ in SAMPLE_METRICS:
                value = getattr(score, key)
                cells.append(f"<td>{'-' if value is None else f'{100 * value:.1f}'}</td>")
        rows.append(f'<tr class="run-{r}">' + "".join(cells) + "</tr>")
    return (
        f'<table class="sample-scores"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def sample_block(view: SampleView, data: ReportData) -> str:
    s = view.sample
    facts = [
        f"video <code>{esc(s.video_id)}</code>",
        f"{s.width}&times;{s.height}",
        f"{s.fps:g} fps",
        f"segment {span_text(s.segment)}",
        f"GT {span_text(s.tube)}",
        f"{esc(data.group_by)} <b>{esc(view.group)}</b>",
    ]
    missing = [data.runs[r].label for r, p in enumerate(view.predictions) if p is None]
    if missing:
        facts.append("no prediction from " + ", ".join(esc(m) for m in missing) + " (scored 0)")
    if view.images:
        strip = '<div class="strip">' + "".join(
            _frame_figure(view, f, image, data)
            for f, image in zip(view.frame_ids, view.images, strict=True)
        )
        strip += "</div>"
    elif view.note:
        strip = f'<p class="note" role="note">{esc(view.note)}</p>'
    else:
        strip = ""
    return (
        f'<article class="sample" id="s{view.index:05d}" data-id="{esc(s.sample_id)}">'
        f'<h3><span>{esc(s.sample_id)}</span><span class="caption">&ldquo;{esc(s.caption)}'
        '&rdquo;</span><a class="up" href="#samples">back to the list</a></h3>'
        f'<p class="facts">{" &middot; ".join(facts)}</p>'
        f"{_sample_scores(view, data)}{_timeline(view, data)}{strip}</article>"
    )
