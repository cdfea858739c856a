"""``stvg report`` without a browser: score tables and sample scores by hand (conftest.py), the
tables equal ``stvg score``'s output, escaping, frames and box geometry, a missing video, labels,
bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from html_tree import Node, parse
from PIL import Image
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.synth import synthesize
from stvg.report.gather import run_labels

runner = CliRunner()
W0, H0 = 64, 48  # the hand data set's frames (conftest.py)
HOSTILE_TEXT = (
    'the <script>window.__xss = 1</script> "red" & <b>bold</b> thing '
    '<img src="x" onerror="window.__xss = 2">'
)


def _page(path: Path) -> Node:
    return parse(path.read_text(encoding="utf-8"))


def _rows(table: Node) -> list[list[str]]:
    return [
        [" ".join(td.text().split()) for td in tr.find_all("td")]
        for tr in table.find("tbody").find_all("tr")
    ]


def _score_rows(page: Node, protocol: str) -> dict[str, list[str]]:
    table = page.find("table", data_protocol=protocol)
    return {row[0]: row[1:] for row in _rows(table)}


# ----------------------------------------------------------------------------- numbers


def test_score_table_by_hand(hand_report):
    rows = _score_rows(_page(hand_report), "tubedetr")
    assert list(rows) == ["easy", "hard", "all"]
    # columns: m_tIoU (A, B), m_vIoU (A, B), vIoU@0.3 (A, B), vIoU@0.5 (A, B), m_sIoU (A, B), count
    # all: A t (1/2 + 0 + 1) / 3, v the same, v>0.3 on q1 q3, v>0.5 on q3 only, s 1;
    #      B t (1 + 1 + 1/2) / 3, v (1/3 + 1/2 + 1/2) / 3, all > 0.3, none > 0.5 (strict),
    #      s (1/3 + 1/2 + 1) / 3
    assert rows["all"] == [
        "50.00", "83.33", "50.00", "44.44", "66.67", "100.00", "33.33", "0.00",
        "100.00", "61.11", "3",
    ]  # fmt: skip
    # easy = q1 alone; hard = q2, q3: A t (0 + 1) / 2, B s (1/2 + 1) / 2
    assert rows["easy"] == [
        "50.00", "100.00", "50.00", "33.33", "100.00", "100.00", "0.00", "0.00",
        "100.00", "33.33", "1",
    ]  # fmt: skip
    assert rows["hard"] == [
        "50.00", "75.00", "50.00", "50.00", "50.00", "100.00", "50.00", "0.00",
        "100.00", "75.00", "2",
    ]  # fmt: skip


def test_sample_list_by_hand(hand_report):
    table = _page(hand_report).find("table", id="sample-table")
    rows = table.find("tbody").find_all("tr")
    assert [r.attrs["data-id"] for r in rows] == ["q1", "q2", "q3"]
    # cells: #, sample, caption, group, A (vIoU, tIoU, sIoU), B (vIoU, tIoU, sIoU), B - A vIoU
    values = [[float(td.attrs["data-value"]) for td in r.find_all("td")[4:]] for r in rows]
    expected = [
        [2 / 4, 1 / 2, 1, 1 / 3, 1, 1 / 3, 1 / 3 - 1 / 2],
        [0, 0, 1, 1 / 2, 1, 1 / 2, 1 / 2],
        [1, 1, 1, 1 / 2, 1 / 2, 1, -1 / 2],
    ]
    np.testing.assert_allclose(values, expected, atol=1e-12)
    assert _rows(table)[0][:4] == ["1", "q1", " ".join(HOSTILE_TEXT.split()), "easy"]
    assert _rows(table)[0][4:] == ["50.0", "50.0", "100.0", "33.3", "100.0", "33.3", "-16.7"]
    # the headers sort: one button each, none sorted yet
    headers = table.find_all("th", aria_sort="none")
    assert len(headers) == 4 + 3 + 3 + 1
    assert all(th.find_all("button") for th in headers)


def _cli_table(out: str) -> dict[str, list[str]]:
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if set(line.replace(" ", "")) == {"-"})
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("note:"):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def synth_runs(tmp_path_factory) -> Path:
    """A small synthetic set and two runs written from its GT: shifted spans and boxes."""
    root = tmp_path_factory.mktemp("report_synth")
    synthesize(root / "data", videos=5, seconds=2.0, fps=10.0, size=(64, 48), progress=False)
    samples = json.loads((root / "data" / "test.json").read_text())["samples"]
    samples += json.loads((root / "data" / "train.json").read_text())["samples"]
    doc = json.loads((root / "data" / "train.json").read_text())
    doc["samples"] = samples
    (root / "both.json").write_text(json.dumps(doc))
    for name, dt, dx in (("A", 1, 2.0), ("B", -3, 7.0)):
        preds = {}
        for i, s in enumerate(samples):
            boxes = {int(f): b for f, b in s["boxes"].items()}
            first = boxes[min(boxes)]
            t0, t1 = s["tube"]
            tube = [max(t0 + dt * (i % 3), 0), max(t1 + dt, t0 + 1)]
            shifted = {}
            for f in range(*s["segment"]):
                b = boxes.get(f, first)
                shifted[str(f)] = [b[0] + dx * (i % 2), b[1], b[2] + dx * (i % 2), b[3] + dx]
            preds[s["sample_id"]] = {"tube": tube, "boxes": shifted}
        doc = {"format": "stvg-predictions/1", "predictions": preds}
        (root / f"{name}.json").write_text(json.dumps(doc))
    return root


@pytest.mark.parametrize("group_by", ["qtype", "extra.kind"])
def test_score_tables_equal_stvg_score(synth_runs, tmp_path, group_by):
    out = tmp_path / "report"
    args = ["report", "--annotations", str(synth_runs / "both.json"), "--out", str(out)]
    args += [
        "--predictions",
        str(synth_runs / "A.json"),
        "--predictions",
        str(synth_runs / "B.json"),
    ]
    args += ["--protocol", "tubedetr", "--protocol", "hcstvg", "--protocol", "stcat"]
    args += ["--group-by", group_by, "--frames", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(str(out / "index.html"))
    page = _page(out / "index.html")
    n_samples = len(json.loads((synth_runs / "both.json").read_text())["samples"])
    assert len(page.find("table", id="sample-table").find("tbody").find_all("tr")) == n_samples
    for protocol in ("tubedetr", "hcstvg", "stcat"):
        html_rows = _score_rows(page, protocol)
        for r, run in enumerate(("A", "B")):
            cli = runner.invoke(
                app,
                [
                    "score",
                    "--annotations", str(synth_runs / "both.json"),
                    "--predictions", str(synth_runs / f"{run}.json"),
                    "--protocol", protocol,
                    "--group-by", group_by,
                ],
            )  # fmt: skip
            assert cli.exit_code == 0, cli.output
            expected = _cli_table(cli.output)
            # HTML cells per group: metric k of run r at k * 2 + r, then the count
            mine = {
                g: [cells[k * 2 + r] for k in range(5)] + [cells[10]]
                for g, cells in html_rows.items()
            }
            assert mine == expected, (protocol, run)


# ----------------------------------------------------------------------------- the page


def test_user_text_is_escaped(hand_report):
    text = hand_report.read_text(encoding="utf-8")
    assert text.count("<script") == 1  # the report's own script, nothing else
    assert "<b>bold</b>" not in text and 'onerror="window' not in text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt; &quot;red&quot; &amp; " in text
    page = parse(text)
    assert page.find_all("img", src="x") == []
    block = page.find("article", id="s00000")
    assert HOSTILE_TEXT in block.find("h3").text()  # shown as text, whole


def test_frames_and_boxes_where_the_annotation_says(hand_report):
    out = hand_report.parent
    block = _page(hand_report).find("article", id="s00000")  # q1: tube [2, 8)
    figures = block.find_all("figure")
    # strip_frame_ids((0, 10), (2, 8), 4): 2 of the tube frames 2..7 (idx 1, 4 -> 3, 6) and 2 of
    # the outside frames [0, 1, 8, 9] (idx 1, 3 -> 1, 9)
    assert [int(f.attrs["data-frame"]) for f in figures] == [1, 3, 6, 9]
    for figure in figures:
        img = figure.find("img")
        pixels = np.asarray(Image.open(out / img.attrs["src"]).convert("RGB"))
        assert pixels.shape == (H0, W0, 3)  # 64 px wide: under tile_width, not enlarged
        assert abs(float(pixels.mean()) - 100) < 4  # the grey frame
        assert figure.find("svg").attrs["viewbox"] == "0 0 64 48"  # (the parser lowercases names)

    def rects(figure: Node) -> dict[str, tuple[str, ...]]:
        return {
            r.attrs["class"].removeprefix("box "): tuple(
                r.attrs[k] for k in ("x", "y", "width", "height")
            )
            for r in figure.find_all("rect", class_="box")
        }

    # frame 3: GT [10, 10, 30, 30]; A's span [4, 10) does not hold it (dashed), B's [2, 8) does
    assert rects(figures[1]) == {
        "gt": ("10", "10", "20", "20"),
        "run-0 out": ("10", "10", "20", "20"),
        "run-1": ("20", "10", "20", "20"),
    }
    # frame 6: both solid, IoU A 1, B 200 / 600
    assert rects(figures[2])["run-0"] == ("10", "10", "20", "20")
    ious = [" ".join(s.text().split()) for s in figures[2].find_all("span", class_="iou")]
    assert ious == ["1.00", "0.33"]
    # frame 1: no GT box, both runs outside their spans
    assert set(rects(figures[0])) == {"run-0 out", "run-1 out"}


def test_timeline_by_hand(hand_report):
    block = _page(hand_report).find("article", id="s00000")
    spans = {
        s.attrs["class"].split()[1]: s.attrs["style"]
        for s in block.find_all("div", class_="tl-span")
    }
    # segment [0, 10): GT [2, 8) at 20 % for 60 %, A [4, 10) at 40 %, B [2, 8) at 20 %
    assert spans == {
        "gt": "left:20%;width:60%",
        "run-0": "left:40%;width:60%",
        "run-1": "left:20%;width:60%",
    }
    ticks = [t.attrs["style"] for t in block.find_all("i", class_="tl-tick")]
    assert ticks == ["left:15%", "left:35%", "left:65%", "left:95%"]  # frames 1, 3, 6, 9 + 0.5


def test_missing_video_keeps_the_timeline(hand_report):
    page = _page(hand_report)
    block = page.find("article", id="s00002")  # q3
    assert block.find_all("figure") == []
    note = " ".join(block.find("p", class_="note").text().split())
    assert note.startswith("Video not found: videos/missing.mp4")
    assert len(block.find_all("div", class_="tl-span")) == 3  # GT, A [0, 4), B [2, 4)
    assert len(page.find("article", id="s00001").find_all("figure")) == 4
    assert not (hand_report.parent / "frames" / "s00002").exists()


def test_no_network_references(hand_report):
    text = hand_report.read_text(encoding="utf-8")
    assert not re.search(r"(https?:)?//[a-z]", text.replace("http://www.w3.org/2000/svg", ""))
    page = parse(text)
    assert page.find_all("link") == []
    sources = {img.attrs["src"] for img in page.find_all("img")}
    assert sources and all(s.startswith("frames/") for s in sources)
    assert all((hand_report.parent / s).is_file() for s in sources)


def test_frames_zero_and_one_run(hand_data, tmp_path):
    out = tmp_path / "one"
    result = runner.invoke(
        app,
        [
            "report",
            "--annotations", str(hand_data / "annotations.json"),
            "--predictions", str(hand_data / "B.json"),
            "--out", str(out),
            "--frames", "0",
            "--label", "mine <i>",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = _page(out / "index.html")
    assert page.find_all("figure") == [] and not (out / "frames").exists()
    assert page.find_all("p", class_="note") == []  # no frames asked: no note either
    rows = _score_rows(page, "tubedetr")
    assert list(rows) == ["declarative", "all"]  # grouped by qtype
    assert rows["all"] == ["83.33", "44.44", "100.00", "0.00", "61.11", "3"]
    legend = " ".join(page.find("ul", class_="legend").text().split())
    assert "mine <i> B.json, 3 tubes" in legend
    assert page.find_all("i", class_="tl-tick") == page.find_all("i")  # the label is text


def test_unreadable_video_keeps_the_timeline(hand_data, tmp_path):
    doc = json.loads((hand_data / "annotations.json").read_text())
    doc["samples"][1]["video_path"] = "bad.mp4"
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 100)
    (tmp_path / "videos").symlink_to(hand_data / "videos")
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    args = ["report", "--annotations", str(tmp_path / "ann.json"), "--out", str(tmp_path / "r")]
    args += ["--predictions", str(hand_data / "A.json"), "--frames", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    page = _page(tmp_path / "r" / "index.html")
    assert len(page.find("article", id="s00000").find_all("figure")) == 3
    block = page.find("article", id="s00001")
    assert block.find_all("figure") == []
    assert block.find("p", class_="note").text().startswith("Cannot read the video bad.mp4")
    assert len(block.find_all("div", class_="tl-span")) == 2  # GT and A


def test_run_labels():
    assert run_labels([Path("x/a.json"), Path("y/b.json")]) == ["a", "b"]
    assert run_labels([Path("runs/a/predictions.json"), Path("runs/b/predictions.json")]) == [
        "a/predictions",
        "b/predictions",
    ]
    assert run_labels([Path("p.json"), Path("p.json")]) == ["p", "p (2)"]


# ----------------------------------------------------------------------------- bad input


def _report(hand_data: Path, tmp_path: Path, *extra: str, preds: str = "A.json"):
    args = ["report", "--annotations", str(hand_data / "annotations.json")]
    args += ["--predictions", str(hand_data / preds), "--out", str(tmp_path / "bad"), *extra]
    return runner.invoke(app, args)


def test_bad_input_is_one_clear_error(hand_data, tmp_path):
    partial = json.loads((hand_data / "A.json").read_text())
    del partial["predictions"]["q2"]
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    cases = [
        (("--protocol", "nope"), "nope"),
        (("--group-by", "kind"), "--group-by"),
        (("--label", "a", "--label", "b"), "--label"),
    ]
    (tmp_path / "file").write_text("")
    cases.append((("--out", str(tmp_path / "file")), "--out"))  # the later --out wins
    for extra, needle in cases:
        result = _report(hand_data, tmp_path, *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert "Bad input" in result.output and needle in result.output
        assert "Traceback" not in result.output
    result = _report(hand_data, tmp_path, preds=str(tmp_path / "partial.json"))
    assert result.exit_code == 2 and "q2" in result.output and "--missing zero" in result.output
    assert not (tmp_path / "bad" / "index.html").exists()
    # with --missing zero the sample is in the list, scored 0 and marked
    result = _report(hand_data, tmp_path, "--missing", "zero", preds=str(tmp_path / "partial.json"))
    assert result.exit_code == 0, result.output
    row = _page(tmp_path / "bad" / "index.html").find("tr", data_id="q2")
    cells = row.find_all("td")
    assert [c.attrs["data-value"] for c in cells[4:7]] == ["0.0", "0.0", "0.0"]
    assert "missing" in cells[4].attrs["class"].split()


def test_sentence_only_annotations(hand_data, tmp_path):
    """No GT boxes: only m_tIoU is scored; the box columns say "-" and sort last."""
    doc = json.loads((hand_data / "annotations.json").read_text())
    doc["has_boxes"] = False
    for sample in doc["samples"]:
        sample["boxes"] = {}
    (tmp_path / "sentences.json").write_text(json.dumps(doc))
    args = ["report", "--annotations", str(tmp_path / "sentences.json"), "--out", str(tmp_path)]
    args += ["--predictions", str(hand_data / "A.json"), "--video-root", str(hand_data)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    page = _page(tmp_path / "index.html")
    # A's tIoU: q1 1/2, q2 0, q3 1
    assert _score_rows(page, "tubedetr")["all"] == ["50.00", "-", "-", "-", "-", "3"]
    row = page.find("tr", data_id="q1").find_all("td")
    assert [c.attrs["data-value"] for c in row[4:7]] == ["", "0.5", ""]
    assert page.find("article", id="s00000").find_all("rect", class_="gt") == []
    assert "Sentence-only" in page.find("section", id="scores").text()
