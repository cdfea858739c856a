"""The typed record accessor every annotation parser uses: values, dotted field names, messages."""

from __future__ import annotations

import math

import pytest

from stvg.data.record import Record
from stvg.errors import InputError

DOC = {
    "fps": 29.97,
    "frames": 120,
    "rate": 25,
    "name": "v1",
    "vid": 7,
    "flag": True,
    "blank": "  ",
    "spans": [],
    "segment": {"begin_fid": 3, "end_fid": "9"},
    "queries": [{"target_id": 1}, {"target_id": "x"}, 5],
    "huge": 10**400,
}


def _rec() -> Record:
    return Record(DOC, file="a.json", sample="s1")


def _error(call) -> InputError:
    with pytest.raises(InputError) as info:
        call()
    return info.value


def test_typed_values() -> None:
    rec = _rec()
    assert rec.int("frames") == 120
    assert rec.float("fps") == 29.97
    value = rec.float("rate")
    assert value == 25.0 and isinstance(value, float)
    assert rec.str("name") == "v1"
    assert rec.id("vid") == "7" and rec.id("name") == "v1"
    assert rec.list("spans") == []
    assert rec.get("absent", None) is None and rec.get("name") == "v1"
    assert "fps" in rec and "absent" not in rec


def test_messages_name_file_sample_and_field() -> None:
    rec = _rec()
    error = _error(lambda: rec.int("absent"))
    assert (error.file, error.sample, error.field) == ("a.json", "s1", "absent")
    assert error.message == "the field is missing (an integer expected)"
    assert str(error) == (
        "Bad input: file a.json, sample s1, field 'absent': the field is missing "
        "(an integer expected)."
    )
    assert _error(lambda: rec.get("absent")).message == "the field is missing"
    assert _error(lambda: rec.int("fps")).message == "expected an integer, got 29.97"
    assert _error(lambda: rec.float("name")).message == "expected a number, got 'v1'"
    assert _error(lambda: rec.str("frames", what="a path string")).message == (
        "expected a path string, got 120"
    )
    assert _error(lambda: rec.list("name")).message == "expected a list, got 'v1'"
    assert _error(lambda: rec.list("spans", nonempty=True)).message == "expected a list, got []"
    assert _error(lambda: rec.str("blank", nonempty=True)).message == "expected a string, got '  '"
    assert _error(lambda: rec.float("huge")).field == "huge"


def test_booleans_are_not_numbers() -> None:
    rec = _rec()
    assert _error(lambda: rec.int("flag")).message == "expected an integer, got True"
    assert _error(lambda: rec.float("flag")).message == "expected a number, got True"
    assert _error(lambda: rec.id("flag")).field == "flag"


def test_positive() -> None:
    rec = Record({"a": 0, "b": -2.5, "c": math.nan, "d": math.inf, "e": 3}, file="f", sample=0)
    assert _error(lambda: rec.int("a", positive=True)).message == "must be positive, got 0"
    for key in "bcd":
        error = _error(lambda key=key: rec.float(key, positive=True))
        assert error.field == key and "positive finite" in error.message
    assert rec.int("e", positive=True) == 3 and rec.float("e", positive=True) == 3.0


def test_nested_objects_get_dotted_names() -> None:
    rec = _rec()
    segment = rec.sub("segment", what="{begin_fid, end_fid}")
    assert segment.int("begin_fid") == 3
    error = _error(lambda: segment.int("end_fid"))
    assert (error.sample, error.field) == ("s1", "segment.end_fid")
    error = _error(lambda: segment.int("missing"))
    assert error.field == "segment.missing"
    error = _error(lambda: rec.sub("name", what="{begin_fid, end_fid}"))
    assert (error.field, error.message) == ("name", "expected {begin_fid, end_fid}, got 'v1'")
    assert segment.at("x") == {"file": "a.json", "sample": "s1", "field": "segment.x"}

    # A list of objects: item i is named "queries.i"; a non-object item is refused at its index.
    error = _error(lambda: rec.subs("queries", item="{target_id}"))
    assert (error.field, error.message) == ("queries.2", "expected {target_id}, got 5")
    two = {"queries": DOC["queries"][:2]}
    first, second = Record(two, file="b.json", sample="e0").subs("queries")
    assert first.int("target_id") == 1
    assert _error(lambda: second.int("target_id")).field == "queries.1.target_id"
    assert second.fail("bad").field == "queries.1"


def test_top_level_must_be_an_object() -> None:
    error = _error(lambda: Record([1, 2], file="c.json", sample="entry 0", what="a VidSTG entry"))
    assert (error.file, error.sample, error.field) == ("c.json", "entry 0", None)
    assert error.message == "expected a VidSTG entry, got [1, 2]"
