"""The model zoo wired through training, prediction and scoring: csdvl, cgstvg, costa and
stvgformer, and ensembles of runs.

A hand-written store (one 3 x 4 grid, 10 stored frames, 4 clips) trains each model for 3 steps
with validation; the run records the model, ``load_run`` rebuilds the same class with the saved
EMA weights, and ``stvg predict`` / ``stvg score --run`` run on it. Spans of the start/end models
are checked against hand-computed ones through a fixed-output module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stvg.cli import app
from stvg.data.sample import Sample
from stvg.errors import InputError
from stvg.evaluate.predict import load_run, predict_dataset, predict_split
from stvg.features.dataset import FeatureDataset
from stvg.features.manifest import Manifest
from stvg.features.store import create_store
from stvg.models.cgstvg import CGSTVG
from stvg.models.costa import CoSTA
from stvg.models.csdvl import CSDVL
from stvg.models.stvgformer import STVGFormer
from stvg.models.zoo import MODELS, native_span
from stvg.train import run as train
from stvg.train.config import resolve

SEGMENT = (0, 20)
FRAME_IDS = np.arange(0, 20, 2)  # 10 stored frames
SPANS = np.array([[0, 5], [5, 10], [10, 15], [15, 20]], dtype=np.int32)  # Td = 4
IMAGE_C, MOTION_C, TEXT_C = 8, 5, 12
WIDTH, HEIGHT = 64, 48

TINY = {  # model.* settings of a tiny model of each kind
    "csdvl": [
        "model.d_model=32", "model.n_layers=1", "model.n_encoder_layers=1", "model.n_heads=2",
        "model.dim_feedforward=32", "model.d_map=16",
    ],
    "cgstvg": [
        "model.d_model=32", "model.n_layers=2", "model.n_encoder_layers=1", "model.n_heads=4",
        "model.dim_feedforward=32",
    ],
    "costa": [
        "model.d_model=32", "model.n_encoder_layers=1", "model.n_temporal_layers=1",
        "model.n_spatial_layers=1", "model.n_heads=4", "model.dim_feedforward=32",
    ],
}  # fmt: skip
TINY["stvgformer"] = TINY["csdvl"]
CLASSES = {"csdvl": CSDVL, "cgstvg": CGSTVG, "costa": CoSTA, "stvgformer": STVGFormer}
TRAIN = ["num_frames=4", "batch_size=2", "max_steps=3", "val_every=1", "model.dropout=0.0"]

runner = CliRunner()


def _sample(sid: str, tube: tuple[int, int]) -> Sample:
    boxes = {f: [2.0 + f, 10.0, 22.0 + f, 40.0] for f in range(*tube)}
    return Sample(
        sample_id=sid, video_id="v", video_path="videos/v.mp4", fps=10.0,
        frame_count=SEGMENT[1], width=WIDTH, height=HEIGHT, segment=SEGMENT, tube=tube,
        boxes=boxes, caption=f"query {sid}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def store_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zoo") / "features"
    rng = np.random.default_rng(0)
    store = create_store(root, Manifest(dataset="normalized", backbones={}))
    queries = {"train": [(2, 12), (6, 16), (4, 10), (8, 18)], "val": [(4, 14)], "test": [(6, 16)]}
    for split, tubes in queries.items():
        with store.writer(split, part=(0, 1)) as w:
            image = rng.normal(size=(len(FRAME_IDS), IMAGE_C, 3, 4)).astype(np.float32)
            motion = rng.normal(size=(len(SPANS), MOTION_C, 2, 2)).astype(np.float32)
            w.write_video("v@0-20", FRAME_IDS.astype(np.int32), image, SPANS, motion)
            for k, tube in enumerate(tubes):
                text = rng.normal(size=(3 + k, TEXT_C)).astype(np.float32)
                w.write_query(_sample(f"{split}{k}", tube), text, np.ones(3 + k, bool), "v@0-20")
    return root


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(store_root, tmp_path_factory) -> dict[str, Path]:
    """One 3-step run of each model (validated after every step)."""
    out = {}
    for name in MODELS:
        run = tmp_path_factory.mktemp(f"run-{name}") / "run"
        config = resolve("synthetic", [f"model_name={name}", *TINY[name], *TRAIN])
        summary = train(store_root, run, config, progress=False)
        assert summary["steps"] == 3
        out[name] = run
    return out


def test_the_zoo_has_the_four_models():
    assert list(MODELS) == ["csdvl", "cgstvg", "costa", "stvgformer"]
    assert resolve("synthetic").model_name == "csdvl"


@pytest.mark.parametrize("name", list(CLASSES))
def test_each_model_trains_saves_and_is_rebuilt(runs, name):
    run = runs[name]
    assert json.loads((run / "config.json").read_text())["model_name"] == name
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert len(steps) == 3 and all(np.isfinite(x["loss"]) for x in steps)
    terms = {"csdvl": "tg", "cgstvg": "temporal_conf", "costa": "kl_start"}
    terms = {**terms, "stvgformer": "aux_dynamic"}[name]
    assert all(terms in x for x in steps)  # the model's own loss terms were logged
    assert [x["step"] for x in lines if "val" in x] == [2, 3]  # each epoch (2 steps), the end

    model, info = load_run(run)
    assert type(model) is CLASSES[name] and info["config"]["model_name"] == name
    saved = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    assert saved["config"]["model_name"] == name
    state = model.state_dict()
    assert state.keys() == saved["ema"].keys()
    assert all(torch.equal(state[k], saved["ema"][k]) for k in state)
    last = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert last["config"]["model_name"] == name


@pytest.mark.parametrize("name", list(CLASSES))
def test_each_model_predicts_and_scores(runs, store_root, tmp_path, name):
    run = runs[name]
    preds, annotations = predict_split(run, store_root, "test", batch_size=1, progress=False)
    batched, _ = predict_split(run, store_root, "test", batch_size=8, progress=False)
    assert sorted(preds) == ["test0"]
    for sid, pred in preds.items():
        start, end = pred["tube"]
        assert SEGMENT[0] <= start < end <= SEGMENT[1]
        assert batched[sid]["tube"] == pred["tube"]
        assert sorted(int(f) for f in pred["boxes"]) == list(range(*SEGMENT))
        for x1, y1, x2, y2 in pred["boxes"].values():
            assert 0 <= x1 <= x2 <= WIDTH and 0 <= y1 <= y2 <= HEIGHT

    out = tmp_path / "preds.json"
    args = ["predict", "--run", str(run), "--features", str(store_root), "--out", str(out)]
    result = runner.invoke(app, [*args, "--frames-per-pass", "3"])  # 4 passes of 3 frames
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["predictions"]) == 1
    args = ["score", "--run", str(run), "--features", str(store_root), "--split", "test"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "m_vIoU" in result.output


def test_stvgformer_predicts_with_twice_the_training_frames(runs, store_root):
    run = runs["stvgformer"]
    _, info = load_run(run)
    assert info["config"]["num_frames"] == 4 and info["model_config"]["test_frames_scale"] == 2
    default, _ = predict_split(run, store_root, "test", progress=False)
    eight, _ = predict_split(run, store_root, "test", progress=False, frames_per_pass=8)
    assert default == eight


def test_an_ensemble_of_runs_on_the_command_line(runs, store_root, tmp_path):
    run = runs["stvgformer"]
    single, twice = tmp_path / "single.json", tmp_path / "twice.json"
    args = ["predict", "--features", str(store_root), "--run", str(run)]
    assert runner.invoke(app, [*args, "--out", str(single)]).exit_code == 0
    result = runner.invoke(app, [*args, "--run", str(run), "--out", str(twice)])
    assert result.exit_code == 0, result.output
    one, two = (json.loads(f.read_text()) for f in (single, twice))
    assert two["predictions"] == one["predictions"]  # the mean of one run with itself
    assert two["provenance"]["run"] == "run+run"
    assert two["provenance"]["ensemble"]["runs"] == ["run", "run"]
    assert "ensemble" not in one["provenance"]
    # a CSDVL run and an STVGFormer run: other models, refused by run and field
    args = ["score", "--features", str(store_root), "--run", str(runs["csdvl"]), "--run", str(run)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "model_name" in result.output and str(run) in result.output
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- spans by hand
def test_native_span_cuts_at_the_midpoints_between_stored_frames():
    ids = FRAME_IDS  # 0, 2, ..., 18; frame k stands for [2k - 1 rounded up, 2k + 1)
    assert native_span(0, 10, ids, SEGMENT) == (0, 20)
    assert native_span(2, 5, ids, SEGMENT) == (3, 9)  # (2 + 4 + 1) // 2, (8 + 10 + 1) // 2
    assert native_span(9, 10, ids, SEGMENT) == (17, 20)
    assert native_span(0, 1, np.array([5, 9]), (3, 12)) == (3, 7)


class FixedStartEnd(torch.nn.Module):
    """Outputs start/end logits peaked at fixed stored frames (read from ``frame_idx``)."""

    def __init__(self, start: int, last: int) -> None:
        super().__init__()
        self.start, self.last = start, last

    def forward(self, batch):
        idx = batch["frame_idx"].float()  # [B, Ts] stored frames of this pass
        return {
            "pred_boxes": torch.full((*idx.shape, 4), 0.5),
            "start_logits": -((idx - self.start) ** 2),
            "end_logits": -((idx - self.last) ** 2),
        }


@pytest.mark.parametrize("name", ["cgstvg", "costa"])
@pytest.mark.parametrize("per_pass", [3, 4, 10])
def test_start_end_spans_join_the_passes(store_root, name, per_pass):
    # stored frames 3 .. 7 (native 6 .. 14) -> native [5, 15) by the midpoint rule
    data = FeatureDataset(store_root, "test", 4)
    model = FixedStartEnd(3, 7)
    preds = predict_dataset(model, data, progress=False, frames_per_pass=per_pass, model_name=name)
    assert preds["test0"]["tube"] == [5, 15]
    box = preds["test0"]["boxes"]["0"]  # cxcywh 0.5 everywhere -> the frame's middle half
    assert box == pytest.approx([16.0, 12.0, 48.0, 36.0])


# ----------------------------------------------------------------------------- refusals
def test_unknown_model_is_refused_by_name(store_root, tmp_path):
    args = ["train", "--features", str(store_root), "--out", str(tmp_path / "r")]
    result = runner.invoke(app, [*args, "--preset", "synthetic", "--model", "bogus"])
    assert result.exit_code == 2
    assert "bogus" in result.output and "costa" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()
    with pytest.raises(InputError, match="model_name"):
        resolve("synthetic", ["model_name=nope"])


def test_model_settings_go_to_the_chosen_models_config():
    config = resolve("synthetic", ["model_name=costa", "model.n_temporal_layers=1"])
    assert config.model == {"n_temporal_layers": 1}
    with pytest.raises(InputError, match="n_temporal_layers"):  # not a CSDVL setting
        resolve("synthetic", ["model.n_temporal_layers=1"])
    with pytest.raises(InputError, match="d_map"):  # CSDVL's, not CG-STVG's
        resolve("synthetic", ["model_name=cgstvg", "model.d_map=8"])
    with pytest.raises(InputError, match="aux_loss"):  # CSDVL's auxiliary decoder losses
        resolve("synthetic", ["model_name=costa", "aux_loss=true"])


def test_resume_refuses_a_different_model(runs, store_root):
    run = runs["costa"]
    before = (run / "checkpoint.pt").read_bytes()
    for extra in ([], ["--force"]):
        result = runner.invoke(
            app,
            [
                "train", "--features", str(store_root), "--out", str(run), "--preset",
                "synthetic", "--resume", "--model", "cgstvg", *extra,
                *[a for s in [*TINY["cgstvg"], *TRAIN] for a in ("--set", s)],
            ],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "different model" in result.output and "'costa'" in result.output
    assert (run / "checkpoint.pt").read_bytes() == before
