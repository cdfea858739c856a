"""Bad annotation and predictions files, property-based (docs/design.md section 11, issue 6 item 2).

Every loader starts from a valid hand-made document (the files in ``tests/fixtures``) and gets
one mangle: a key dropped, a value of the wrong type, a NaN / negative / huge number, a box with
x2 < x1, a duplicated record or key, an empty caption, non-UTF-8 bytes, or the text cut short.
``stvg data stats`` (and ``stvg score`` for predictions files) must then either succeed with the
query count of the mangled document (never a silent drop) or exit 2 with a one-paragraph
"Bad input:" message naming the file (and the sample and field when the mangle is inside a
sample) - never a crash.

The expected count is computed here from the raw document, independently of the loaders.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stvg.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
runner = CliRunner()
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

Path_ = tuple[Any, ...]


# ----------------------------------------------------------------------------- counting
def _count_normalized(doc: Any) -> int:
    return len(doc["samples"])


def _count_vidstg(doc: Any) -> int:
    return sum(len(r.get("captions", [])) + len(r.get("questions", [])) for r in doc)


def _count_list(doc: Any) -> int:
    if not isinstance(doc, list):
        raise TypeError("not a list")
    return len(doc)


def _count_keys(doc: Any) -> int:
    if not isinstance(doc, dict):
        raise TypeError("not an object")
    return len(doc)


def _count_tubedetr_vidstg(doc: Any) -> int:
    return len(doc["videos"])


# name -> (fixture, extra CLI args, counter, how deep a path must go to be inside one sample)
LOADERS: dict[str, tuple[Path, list[str], Callable[[Any], int], int]] = {
    "normalized": (FIXTURES / "vidstg" / "normalized.json", [], _count_normalized, 2),
    "vidstg": (FIXTURES / "vidstg" / "test_annotations.json", [], _count_vidstg, 1),
    "vidstg+boxes": (FIXTURES / "vidstg" / "test_annotations.json", ["boxes"], _count_vidstg, 1),
    "hcstvg-v1": (FIXTURES / "hcstvg" / "test.json", [], _count_keys, 1),
    "hcstvg-v2": (FIXTURES / "hcstvg" / "valv2.json", [], _count_keys, 1),
    "tubedetr-vidstg": (FIXTURES / "tubedetr" / "vidstg_test.json", [], _count_tubedetr_vidstg, 2),
    "tubedetr-hcstvg": (FIXTURES / "tubedetr" / "hcstvg_test_proc.json", [], _count_list, 1),
}


# ----------------------------------------------------------------------------- mangles
def paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path into a JSON document (not the root itself)."""
    out = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, value in items:
        out.append((*prefix, key))
        out += paths(value, (*prefix, key))
    return out


def get(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def parent_of(doc: Any, path: Path_) -> tuple[Any, Any]:
    return get(doc, path[:-1]), path[-1]


WRONG_VALUES = ["x", "", None, True, [], {}, 1.5, -3, 10**9, [1, 2], {"a": 1}]
BAD_NUMBERS = [math.nan, math.inf, -math.inf, -5, -0.5, 10**7, 1e308]
CAPTION_KEYS = {"caption", "description", "English"}


def mangle(doc: Any, op: str, path: Path_, pick: int) -> Any | None:
    """Apply one structural mangle at ``path``; ``None`` when ``op`` does not apply there."""
    doc = copy.deepcopy(doc)
    parent, key = parent_of(doc, path)
    value = parent[key]
    if op == "drop":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif op == "wrong_type":
        choices = [v for v in WRONG_VALUES if type(v) is not type(value)]
        parent[key] = choices[pick % len(choices)]
    elif op == "bad_number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        parent[key] = BAD_NUMBERS[pick % len(BAD_NUMBERS)]
    elif op == "swap_box":
        if isinstance(value, dict) and {"xmin", "xmax"} <= set(value):
            value["xmin"], value["xmax"] = value["xmax"] + 1, value["xmin"]
        elif (
            isinstance(value, list)
            and len(value) == 4
            and all(isinstance(v, (int, float)) for v in value)
        ):
            # xyxy -> x2 < x1; xywh -> negative width
            value[0], value[2] = value[2] + 1, -abs(value[0]) - 1
        else:
            return None
    elif op == "duplicate":
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        else:
            return None  # duplicate object keys are made on the text (see duplicate_key)
    elif op == "empty_caption":
        if key not in CAPTION_KEYS:
            return None
        parent[key] = ["", "   "][pick % 2]
    elif op == "out_of_video":
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        parent[key] = [value + 10**5, -(value + 1)][pick % 2]
    return doc


OPS = ["drop", "wrong_type", "bad_number", "swap_box", "duplicate", "empty_caption", "out_of_video"]


def duplicate_key(text: str, doc: Any) -> str | None:
    """The document with its first top-level object key written twice (JSON allows the text;
    a plain ``json.loads`` keeps only the last, which would drop a sample silently)."""
    if not isinstance(doc, dict) or not doc:
        return None
    first = next(iter(doc))
    body = json.dumps(doc[first])
    return "{" + json.dumps(first) + ": " + body + ", " + text.strip()[1:]


def text_mangle(raw: bytes, op: str, pick: int) -> bytes:
    """Byte-level mangles: the text cut short, or non-UTF-8 bytes inside a string."""
    if op == "truncate":
        return raw[: 1 + pick % (len(raw) - 2)]
    quotes = [m.start() for m in re.finditer(rb'"', raw)]
    at = quotes[pick % len(quotes)] + 1
    return raw[:at] + b"\xff\xfe\xc3" + raw[at:]


# ----------------------------------------------------------------------------- checking
def check_result(
    result: Any,
    file: Path,
    expected_count: Callable[[], int],
    inside_sample: bool,
    count_of: Callable[[Any], int],
) -> None:
    """Exit 0 with the right count, or exit 2 with one "Bad input:" paragraph naming the file."""
    assert result.exit_code in (0, 2), (
        f"crashed (exit {result.exit_code}): {result.exception!r}\n{result.output}"
    )
    if result.exit_code == 0:
        try:
            count = expected_count()
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"accepted a document whose queries cannot be counted ({error!r})")
        assert count_of(result) == count, "silent drop: the counts differ\n" + result.output
        return
    lines = [x for x in result.stderr.splitlines() if x.startswith("Bad input:")]
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert file.name in message, message
    if inside_sample:
        assert "sample " in message and "field '" in message, message


def stats_count(result: Any) -> int:
    return json.loads(result.stdout.strip().splitlines()[-1])["queries"]


@pytest.fixture(scope="module")
def workdir():
    root = Path(tempfile.mkdtemp(prefix="stvg-bad-annotations-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def write_case(workdir: Path, name: str, data: bytes) -> tuple[Path, list[str]]:
    """Write the annotation file (and, for vidstg+boxes, a copy of the VidOR box folder)."""
    case = Path(tempfile.mkdtemp(dir=workdir))
    path = case / f"{name}.json"
    path.write_bytes(data)
    args = ["-q", "data", "stats", "--annotations", str(path), "--json"]
    if name == "vidstg+boxes":
        shutil.copytree(FIXTURES / "vidstg" / "vidor", case / "vidor")
        args += ["--boxes-dir", str(case / "vidor")]
    return path, args


def run_stats(args: list[str]) -> Any:
    return runner.invoke(app, args)


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("name", list(LOADERS))
def test_valid_fixture_counts(name, workdir):
    fixture, _, count, _ = LOADERS[name]
    path, args = write_case(workdir, name, fixture.read_bytes())
    result = run_stats(args)
    assert result.exit_code == 0, result.output
    assert stats_count(result) == count(json.loads(fixture.read_text()))


@pytest.mark.parametrize("name", list(LOADERS))
@SETTINGS
@given(data=st.data())
def test_structural_mangles(name, workdir, data):
    fixture, _, count, depth = LOADERS[name]
    doc = json.loads(fixture.read_text())
    path = data.draw(st.sampled_from(paths(doc)), label="path")
    op = data.draw(st.sampled_from(OPS), label="op")
    mangled = mangle(doc, op, path, data.draw(st.integers(0, 50), label="pick"))
    if mangled is None:
        mangled = mangle(doc, "wrong_type", path, 0)
    file, args = write_case(workdir, name, json.dumps(mangled).encode())
    result = run_stats(args)
    inside = len(path) > depth and not _null_sample_id(name, mangled, path)
    check_result(result, file, lambda: count(mangled), inside, stats_count)


def _null_sample_id(name: str, doc: Any, path: Path_) -> bool:
    """The known gap of test_null_sample_id_names_the_sample_by_index."""
    return (
        name == "normalized"
        and path[-1] == "sample_id"
        and get(doc, path[:2]).get(path[2], 0) is None
    )


def test_null_sample_id_names_the_sample_by_index(workdir):
    doc = json.loads((FIXTURES / "vidstg" / "normalized.json").read_text())
    doc["samples"][2]["sample_id"] = None
    file, args = write_case(workdir, "normalized", json.dumps(doc).encode())
    result = run_stats(args)
    assert result.exit_code == 2
    assert "sample 2" in result.stderr or "sample #2" in result.stderr, result.stderr


@pytest.mark.parametrize("name", list(LOADERS))
@SETTINGS
@given(op=st.sampled_from(["truncate", "non_utf8", "duplicate_key"]), pick=st.integers(0, 10**6))
def test_text_mangles(name, workdir, op, pick):
    fixture, _, count, _ = LOADERS[name]
    raw = fixture.read_bytes()
    doc = json.loads(raw)
    if op == "duplicate_key":
        text = duplicate_key(raw.decode(), doc)
        if text is None:
            text = raw.decode() + "\n" + raw.decode()  # two documents in one file
        data = text.encode()
    else:
        data = text_mangle(raw, op, pick)
    file, args = write_case(workdir, name, data)
    result = run_stats(args)

    def expected() -> int:
        # A document that still parses as the same JSON with unique keys keeps its count.
        parsed = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
        return count(parsed)

    check_result(result, file, expected, False, stats_count)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


@SETTINGS
@given(data=st.data())
def test_vidor_box_file_mangles(workdir, data):
    """Mangles inside a VidOR box file: the error names that box file."""
    box_file = FIXTURES / "vidstg" / "vidor" / "validation" / "0001" / "1001.json"
    doc = json.loads(box_file.read_text())
    sentences = FIXTURES / "vidstg" / "test_annotations.json"
    path = data.draw(st.sampled_from(paths(doc)), label="path")
    op = data.draw(st.sampled_from([*OPS, "truncate", "non_utf8"]), label="op")
    pick = data.draw(st.integers(0, 10**6), label="pick")
    if op in ("truncate", "non_utf8"):
        raw = text_mangle(box_file.read_bytes(), op, pick)
    else:
        mangled = mangle(doc, op, path, pick)
        raw = json.dumps(mangled if mangled is not None else mangle(doc, "wrong_type", path, 0))
        raw = raw.encode()
    file, args = write_case(workdir, "vidstg+boxes", sentences.read_bytes())
    target = file.parent / "vidor" / "validation" / "0001" / "1001.json"
    target.write_bytes(raw)
    result = run_stats(args)
    n = _count_vidstg(json.loads(sentences.read_text()))
    check_result(result, target, lambda: n, False, stats_count)


# ----------------------------------------------------------------------------- predictions
def _valid_predictions() -> dict[str, Any]:
    doc = json.loads((FIXTURES / "vidstg" / "normalized.json").read_text())
    predictions = {}
    for s in doc["samples"]:
        start, end = s["segment"]
        box = next(iter(s["boxes"].values()), [0.0, 0.0, 5.0, 5.0])
        predictions[s["sample_id"]] = {
            "tube": s["tube"],
            "boxes": {str(f): s["boxes"].get(str(f), box) for f in range(start, end)},
        }
    return {"format": "stvg-predictions/1", "predictions": predictions}


def score_count(result: Any) -> int:
    return json.loads(Path(result.json_path).read_text())["all"]["count"]


@SETTINGS
@given(data=st.data())
def test_predictions_mangles(workdir, data):
    """``stvg score`` on a mangled predictions file: right count, or exit 2 naming the file."""
    valid = _valid_predictions()
    n = len(valid["predictions"])
    op = data.draw(st.sampled_from([*OPS, "truncate", "non_utf8"]), label="op")
    pick = data.draw(st.integers(0, 10**6), label="pick")
    raw = json.dumps(valid).encode()
    inside = False
    if op in ("truncate", "non_utf8"):
        raw = text_mangle(raw, op, pick)
    else:
        path = data.draw(st.sampled_from(paths(valid)), label="path")
        mangled = mangle(valid, op, path, pick)
        if mangled is None:
            mangled = mangle(valid, "wrong_type", path, 0)
        raw = json.dumps(mangled).encode()
        inside = len(path) > 2 and path[0] == "predictions"
    case = Path(tempfile.mkdtemp(dir=workdir))
    file = case / "predictions.json"
    file.write_bytes(raw)
    out = case / "metrics.json"
    args = ["-q", "score", "--annotations", str(FIXTURES / "vidstg" / "normalized.json")]
    args += ["--predictions", str(file), "--json-out", str(out)]
    result = runner.invoke(app, args)
    result.json_path = out
    # A mangled box or span may legitimately score; the count must still be every query.
    check_result(result, file, lambda: n, inside, score_count)
