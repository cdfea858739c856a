"""stvg.config: ``key=value`` overrides typed by the dataclass field, refused by name, and every
settings dataclass checked when built (without changing a default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from stvg.config import apply_overrides, build, check_fields, parse_value, require
from stvg.errors import InputError
from stvg.extract.config import DATASETS, ExtractConfig
from stvg.extract.config import resolve as resolve_extract
from stvg.models import CSDVLConfig
from stvg.train.config import TrainConfig, resolve


@dataclass
class Inner:
    width: int = 4
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    rate: float = 0.5
    steps: int | None = None
    on: bool = False
    name: str = "x"
    kind: Literal["up", "down"] = "up"
    counts: list[int] | None = None
    inner: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self, "Outer")
        require(self.rate > 0, "rate", self.rate, "must be > 0", "Outer")


@pytest.mark.parametrize(
    "text, tp, value",
    [
        ("3", int, 3),
        ("-7", int, -7),
        ("1e-3", float, 0.001),
        ("2", float, 2.0),
        ("true", bool, True),
        ("OFF", bool, False),
        ("0", bool, False),
        ("none", int | None, None),
        ("12", int | None, 12),
        ("b", Literal["a", "b"], "b"),
        ("[15, 8]", list[int], [15, 8]),
        ("15,8,8", list[int], [15, 8, 8]),
        ("a=b", str, "a=b"),
    ],
)
def test_parse_value_converts_to_the_annotated_type(text, tp, value):
    parsed = parse_value(text, tp)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    "text, tp, words",
    [
        ("abc", float, "expected a number"),
        ("2.5", int, "expected an integer"),
        ("maybe", bool, "expected true or false"),
        ("c", Literal["a", "b"], "expected one of a, b"),
        ("1,x", list[int], r"expected a list of integers \(e.g. 1,2,3\)"),
    ],
)
def test_parse_value_refuses_with_what_was_expected(text, tp, words):
    with pytest.raises(ValueError, match=words):
        parse_value(text, tp)


def test_apply_overrides_types_nested_keys_and_names_bad_ones():
    values = apply_overrides(
        Outer,
        {"rate": 0.5},
        ["steps=10", "on=yes", "kind=down", "inner.width=8", "inner.mode=b", "counts=1,2"],
        nested={"inner": Inner},
    )
    assert values == {
        "rate": 0.5,
        "steps": 10,
        "on": True,
        "kind": "down",
        "inner": {"width": 8, "mode": "b"},
        "counts": [1, 2],
    }
    cases = [
        ("kind=sideways", "--set kind=sideways: expected one of up, down"),
        ("rate=fast", "--set rate=fast: expected a number"),
        ("bogus=1", "--set bogus=1: unknown setting 'bogus'"),
        ("inner.depth=1", "--set inner.depth=1: unknown setting 'depth' of inner"),
        ("inner.width=wide", "--set inner.width=wide: expected an integer"),
        ("inner=3", "--set inner=3: set its keys one by one"),
        ("rate", "--set rate: expected key=value"),
    ]
    for item, message in cases:
        with pytest.raises(InputError) as error:
            apply_overrides(Outer, {}, [item], nested={"inner": Inner})
        assert message in str(error.value), item


def test_build_names_the_override_that_broke_a_check():
    with pytest.raises(InputError, match=r"--set rate=-2: must be > 0"):
        build(Outer, {"rate": -2.0}, ["rate=-2"])
    # not from an override: the class and the field are named
    with pytest.raises(InputError, match=r"Outer rate=-2.0: must be > 0"):
        build(Outer, {"rate": -2.0})
    with pytest.raises(InputError, match=r"Outer kind='left': expected one of up, down"):
        Outer(kind="left")  # type: ignore[arg-type]


def test_train_overrides_are_typed_and_checked():
    config = resolve("synthetic", ["lr=5e-4", "max_steps=3", "lr_schedule=constant", "seed=7"])
    assert (config.lr, config.max_steps, config.lr_schedule, config.seed) == (
        0.0005,
        3,
        "constant",
        7,
    )
    cases = [
        ("lr=abc", "--set lr=abc: expected a number"),
        ("lr_schedule=cosin", "--set lr_schedule=cosin: expected one of constant, cosine"),
        ("lr=-1e-4", "--set lr=-1e-4: must be >= 0"),
        ("batch_size=0", "--set batch_size=0: must be >= 1"),
        ("ema_decay=1.5", "--set ema_decay=1.5: must be in [0, 1)"),
        ("model.collab=both", "--set model.collab=both: expected one of none, s2d"),
        ("model.d_model=65", "--set model.d_model=65: must be divisible by n_heads (8)"),
        ("model.dropout=2", "--set model.dropout=2: must be in [0, 1)"),
    ]
    for item, message in cases:
        with pytest.raises(InputError) as error:
            resolve("synthetic", [item])
        assert message in str(error.value), item


def test_configs_are_checked_when_built():
    with pytest.raises(InputError, match="TrainConfig lr=-1"):
        TrainConfig(lr=-1)
    with pytest.raises(InputError, match="TrainConfig lr_schedule='cosin'"):
        TrainConfig(lr_schedule="cosin")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="TrainConfig epochs='3': expected an integer"):
        TrainConfig(epochs="3")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ExtractConfig dataset='foo'"):
        ExtractConfig(dataset="foo")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ExtractConfig target_fps=0"):
        ExtractConfig(target_fps=0)
    with pytest.raises(InputError) as error:
        CSDVLConfig(map_kernel=4)
    assert error.value.field == "map_kernel"


def test_defaults_and_presets_are_unchanged():
    # the paper's numbers (CSDVL supplementary B.1), written out by hand
    t = TrainConfig()
    assert (t.lr, t.weight_decay, t.batch_size, t.ema_decay, t.epochs, t.num_frames) == (
        1e-4,
        1e-4,
        8,
        0.99997,
        10,
        64,
    )
    assert (t.loss_l1, t.loss_giou, t.loss_tg, t.loss_ta, t.lr_schedule) == (
        5.0,
        2.0,
        5.0,
        1.0,
        "constant",
    )
    s = resolve("synthetic")
    assert (s.lr, s.lr_schedule, s.warmup_steps, s.ema_decay, s.num_workers) == (
        1e-3,
        "cosine",
        50,
        0.98,
        0,
    )
    m = CSDVLConfig()
    assert (m.d_model, m.n_heads, m.n_layers, m.alpha, m.collab) == (256, 8, 6, 1.0, "full")
    e = resolve_extract("vidstg")
    assert (e.n_short, e.td, e.target_fps, e.max_frames, e.device) == (448, 64, 5.0, 200, "cpu")
    assert resolve_extract("hcstvg-v2").sampling() == {
        "target_fps": 5.0,
        "max_frames": 200,
        "n_short": 320,
        "td": 16,
        "clip_size": 256,
        "max_text_len": 64,
    }


def test_extract_set_reaches_every_field_and_names_bad_ones():
    config = resolve_extract("synthetic", ["target_fps=2", "max_frames=100", "max_text_len=32"])
    assert (config.target_fps, config.max_frames, config.max_text_len) == (2.0, 100, 32)
    with pytest.raises(InputError, match=r"--dataset foo: expected one of vidstg"):
        resolve_extract("foo")
    with pytest.raises(InputError, match=r"--set extract.td=0: must be >= 1"):
        resolve_extract("synthetic", ["td=0"], prefix="extract.")
    with pytest.raises(InputError, match=r"--td 0: must be >= 1"):
        resolve_extract("synthetic", td=0)


def test_extract_choices_match_the_backbone_registries():
    from typing import get_args

    from stvg.extract.backbones.image import IMAGE_BACKBONES, IMAGE_LAYERS
    from stvg.extract.backbones.video import VIDEO_BACKBONES
    from stvg.extract.config import ImageBackbone, ImageLayer, VideoBackbone
    from stvg.models.collaboration import COLLAB_MODES

    assert set(get_args(ImageBackbone)) == set(IMAGE_BACKBONES)
    assert set(get_args(ImageLayer)) == set(IMAGE_LAYERS)
    assert set(get_args(VideoBackbone)) == set(VIDEO_BACKBONES)
    assert DATASETS == ("vidstg", "hcstvg-v1", "hcstvg-v2", "synthetic", "normalized")
    from stvg.config import choices_of, field_types

    assert choices_of(field_types(CSDVLConfig)["collab"]) == COLLAB_MODES
