"""Ensembles of runs (stvg.evaluate.ensemble): averaging by hand on fake models, and refusals.

One query, 4 stored frames, one pass of 4 frames, 2 clips. Two fake models with fixed outputs:
their boxes average to a box computed by hand, and their score maps are chosen so that the
ensemble's rule (mean of the probabilities) picks a span that neither model alone, nor the mean
of the logits, picks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sample_factory import make_sample

from stvg.errors import InputError
from stvg.evaluate.ensemble import (
    average_boxes,
    average_records,
    check_runs,
    ensemble_provenance,
)
from stvg.evaluate.predict import predict_dataset, prediction_provenance
from stvg.models.heads import proposal_mask

STORED = np.array([0, 2, 4, 6])
CLIP_SPANS = np.array([[0, 4], [4, 8]])
MASK = proposal_mask(2, [1])  # (0, 0), (0, 1), (1, 1)
# logits of (0, 0), (0, 1), (1, 1): model A alone picks (0, 0), B alone (1, 1); mean logits
# (1.25, 1, 0) pick (0, 0); mean probabilities (0.582, 0.731, 0.5) pick (0, 1).
LOGITS = {"a": (4.0, 1.0, -4.0), "b": (-1.5, 1.0, 4.0)}
WH = {"a": (0.2, 0.2), "b": (0.4, 0.6)}  # normalized (w, h), centred boxes


class OneQuery:
    num_frames = 4

    def __init__(self) -> None:
        self.samples = [make_sample("q", (0, 8), segment=(0, 8), width=100, height=50)]

    def __len__(self) -> int:
        return 1

    def stored_frame_ids(self, index: int) -> np.ndarray:
        return STORED

    def pass_items(self, index: int, passes: list[np.ndarray]) -> list[dict]:
        return [
            {
                "index": index,
                "text": torch.zeros(2, 3),
                "text_mask": torch.ones(2, dtype=torch.bool),
                "frame_idx": torch.from_numpy(idx),
                "frame_ids": torch.from_numpy(STORED[idx]),
                "clip_spans": torch.from_numpy(CLIP_SPANS),
            }
            for idx in passes
        ]


class FixedMap(torch.nn.Module):
    """A 2D-map model with the fixed outputs of ``LOGITS[key]`` and ``WH[key]``."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def forward(self, batch: dict) -> dict:
        b, ts = batch["frame_idx"].shape
        w, h = WH[self.key]
        logits = torch.full((2, 2), -1.0e4)
        logits[0, 0], logits[0, 1], logits[1, 1] = LOGITS[self.key]
        return {
            "pred_boxes": torch.tensor([0.5, 0.5, w, h]).expand(b, ts, 4),
            "score_map": logits.expand(b, 2, 2),
            "map_mask": MASK,
        }


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_the_fake_maps_tell_the_rules_apart():
    # guards the next test: its span comes only from the mean of the probabilities
    a, b = LOGITS["a"], LOGITS["b"]
    mean_prob = [(_sigmoid(x) + _sigmoid(y)) / 2 for x, y in zip(a, b, strict=True)]
    mean_logit = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
    best = [max(range(3), key=v.__getitem__) for v in (a, b, mean_logit, mean_prob)]
    assert best == [0, 2, 0, 1]


def test_an_ensemble_averages_each_pass_by_hand():
    data = OneQuery()
    alone = {k: predict_dataset(FixedMap(k), data, progress=False)["q"] for k in "ab"}
    assert alone["a"]["tube"] == [0, 4] and alone["b"]["tube"] == [4, 8]
    got = predict_dataset([FixedMap("a"), FixedMap("b")], data, progress=False)["q"]
    assert got["tube"] == [0, 8]  # proposal (0, 1): clips 0..1
    # w = (0.2 + 0.4) / 2 = 0.3 of 100 px, h = (0.2 + 0.6) / 2 = 0.4 of 50 px, centred
    assert got["boxes"]["3"] == pytest.approx([35.0, 15.0, 65.0, 35.0])
    assert alone["a"]["boxes"]["3"] == pytest.approx([40.0, 20.0, 60.0, 30.0])


def test_average_records_by_hand():
    maps = [
        [{"prob": torch.tensor([[0.2, 0.6], [0.0, 0.4]]), "map_mask": MASK}],
        [{"prob": torch.tensor([[0.4, 0.2], [0.0, 1.0]]), "map_mask": MASK}],
    ]
    (got,) = average_records(maps)
    assert torch.allclose(got["prob"], torch.tensor([[0.3, 0.4], [0.0, 0.7]]))
    assert torch.equal(got["map_mask"], MASK)
    # start/end: softmax (1/4, 3/4) and (3/4, 1/4) average to (1/2, 1/2), kept as logs
    ln3 = math.log(3)
    start_end = [
        [{"start_logits": torch.tensor([0.0, ln3]), "end_logits": torch.tensor([0.0, 0.0])}],
        [{"start_logits": torch.tensor([ln3, 0.0]), "end_logits": torch.tensor([5.0, 5.0])}],
    ]
    (got,) = average_records(start_end)
    assert got["start_logits"].exp().tolist() == pytest.approx([0.5, 0.5])
    assert got["end_logits"].exp().tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="different kinds"):
        average_records([maps[0], start_end[0]])
    other = [{"prob": maps[1][0]["prob"], "map_mask": torch.ones(2, 2, dtype=torch.bool)}]
    with pytest.raises(ValueError, match="valid proposals"):
        average_records([maps[0], other])
    boxes = [torch.tensor([[[0.5, 0.5, 0.2, 0.2]]]), torch.tensor([[[0.3, 0.7, 0.4, 0.6]]])]
    assert average_boxes(boxes)[0, 0].tolist() == pytest.approx([0.4, 0.6, 0.3, 0.4])
    assert average_boxes(boxes[:1]) is boxes[0]


def _info(name: str = "csdvl", pooling: list[int] | None = None) -> dict:
    model_config = {"d_model": 32, "pooling_counts": pooling} if name == "csdvl" else {}
    return {"config": {"model_name": name, "num_frames": 4}, "model_config": model_config}


@pytest.mark.parametrize(
    ("second", "frames", "field"),
    [
        (_info("costa"), 4, "model_name"),
        (_info(), 8, "frames_per_pass"),
        (_info(pooling=[1]), 4, "model.pooling_counts"),
    ],
)
def test_runs_that_cannot_be_averaged_are_refused_by_name(second, frames, field):
    check_runs(["runs/a", "runs/b"], [_info(), _info()], [4, 4])  # agree
    with pytest.raises(InputError) as caught:
        check_runs(["runs/a", "runs/b"], [_info(), second], [4, frames])
    assert caught.value.field == field and caught.value.file == "runs/b"
    assert "runs/a" in str(caught.value)


def test_a_mix_of_model_kinds_is_refused():
    from stvg.models.cgstvg import CGSTVG, CGSTVGConfig
    from stvg.models.csdvl import CSDVL, CSDVLConfig

    tiny = {"d_model": 16, "n_heads": 2, "n_layers": 1, "n_encoder_layers": 1}
    models = [CSDVL(CSDVLConfig(**tiny, d_map=8)), CGSTVG(CGSTVGConfig(**tiny))]
    with pytest.raises(InputError, match="cgstvg, csdvl"):
        predict_dataset(models, OneQuery(), progress=False)


def test_provenance_names_the_runs():
    assert ensemble_provenance(["runs/a"]) == {"run": "a"}
    got = prediction_provenance(["runs/a", "other/b"], "test")
    assert got["run"] == "a+b" and got["split"] == "test"
    assert got["ensemble"]["runs"] == ["a", "b"] and "mean" in got["ensemble"]["combined"]
    assert "ensemble" not in prediction_provenance("runs/a", "test")
