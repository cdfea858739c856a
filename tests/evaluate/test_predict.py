"""Stage three's first half (stvg.evaluate.predict): passes, boxes and spans by hand.

``predict_dataset`` runs here on a fake dataset and a fake model whose outputs are closed-form
functions of what they are given, so every number below is computed by hand: the box of a
stored frame is a linear function of its native id, the score map of each pass is chosen so
that averaging probabilities, averaging logits and taking any single pass pick different spans.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sample_factory import make_sample

from stvg.data.sample import Sample
from stvg.evaluate.predict import (
    cxcywh_to_pixels,
    interpolate_boxes,
    pass_indices,
    predict_dataset,
    tube_from_outputs,
)
from stvg.models.heads import proposal_mask


def test_pass_indices_by_hand():
    # 10 stored frames, 4 a pass -> P = 3 passes interleaving the 12 points
    # floor((j + .5) * 10 / 12) = 0 1 2 2 3 4 5 6 7 7 8 9: pass p takes j = p, p + 3, ...
    got = [p.tolist() for p in pass_indices(10, 4)]
    assert got == [[0, 2, 5, 7], [1, 3, 6, 8], [2, 4, 7, 9]]  # frames 2 and 7 twice
    # one pass is training's uniform layout floor((k + .5) * 3 / 4): frames repeat
    assert [p.tolist() for p in pass_indices(3, 4)] == [[0, 1, 1, 2]]
    # S = P * F: every frame exactly once, strided
    assert [p.tolist() for p in pass_indices(8, 4)] == [[0, 2, 4, 6], [1, 3, 5, 7]]


@pytest.mark.parametrize(
    ("stored", "per_pass", "passes"), [(100, 48, 3), (200, 48, 5), (100, 96, 2), (200, 96, 3)]
)
def test_pass_layouts_of_long_grids(stored, per_pass, passes):
    # frame k of pass p is floor((k + (p + .5) / P) * S / F) = (2Pk + 2p + 1) * S // (2PF)
    got = pass_indices(stored, per_pass)
    assert len(got) == passes
    for p, idx in enumerate(got):
        want = [
            (2 * passes * k + 2 * p + 1) * stored // (2 * passes * per_pass)
            for k in range(per_pass)
        ]
        assert idx.tolist() == want
        # spread over the whole segment: frame k is the floor of a point of [k S / F, (k+1) S / F)
        for k, f in enumerate(want):
            assert (f + 1) * per_pass > k * stored and f * per_pass < (k + 1) * stored
    seen = np.bincount(np.concatenate(got), minlength=stored)
    assert seen.min() == 1 and seen.max() == 2  # every stored frame, none more than twice
    assert int((seen == 2).sum()) == passes * per_pass - stored


def test_pass_layouts_by_hand():
    # HC-STVG: 100 stored frames, Ts 48 -> 3 passes; frame k of pass p is (6k + 2p + 1) * 25 // 72
    p0, p1, p2 = (x.tolist() for x in pass_indices(100, 48))
    assert p0[:13] == [0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25]  # 1225 // 72 = 17
    assert p1[:3] == [1, 3, 5] and p2[:3] == [1, 3, 5]  # 75 // 72, 125 // 72 = 1; 175 // 72 = 2...
    assert (p0[-1], p1[-1], p2[-1]) == (98, 98, 99)  # 7075, 7125, 7175 // 72
    # 200 stored frames, 96 a pass (STVGFormer's test setting) -> 3 passes, same fractions
    q0, q1, q2 = (x.tolist() for x in pass_indices(200, 96))
    assert q0[:4] == [0, 2, 4, 6] and q2[:4] == [1, 3, 5, 7] and q2[-1] == 199
    # 200 stored frames, 48 a pass -> 5 passes: (10k + 2p + 1) * 5 // 12
    r = [x.tolist() for x in pass_indices(200, 48)]
    assert [x[0] for x in r] == [0, 1, 2, 2, 3] and [x[1] for x in r] == [4, 5, 6, 7, 7]
    assert [x[-1] for x in r] == [196, 197, 197, 198, 199]  # 2355 ... 2395 // 12


def test_a_frame_in_two_passes_gets_the_mean_of_its_boxes():
    sample = _sample(0)  # 100 x 50 px, segment [4, 44)
    stored = np.array([4, 20, 40])
    passes = [np.array([0, 1]), np.array([1, 2])]  # stored frame 1 (native 20) in both
    boxes = [
        np.array([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.4, 0.4]]),
        np.array([[0.5, 0.5, 0.6, 0.8], [0.5, 0.5, 0.2, 0.2]]),
    ]
    prob = torch.tensor([[0.9, 0.1], [0.0, 0.2]])
    spans = np.array([[4, 24], [24, 44]])
    got = tube_from_outputs(sample, stored, spans, passes, boxes, prob, proposal_mask(2, [1]))
    assert got["tube"] == [4, 24]
    # native 20: width (0.4 + 0.6) / 2 = 0.5 of 100 px, height (0.4 + 0.8) / 2 = 0.6 of 50 px
    assert got["boxes"]["20"] == pytest.approx([25.0, 10.0, 75.0, 40.0])
    assert got["boxes"]["4"] == pytest.approx([40.0, 20.0, 60.0, 30.0])
    with pytest.raises(ValueError, match="in no pass"):
        tube_from_outputs(sample, stored, spans, passes[:1], boxes[:1], prob, proposal_mask(2))


def test_cxcywh_to_pixels_by_hand():
    boxes = np.array([[0.5, 0.5, 0.2, 0.4], [0.05, 0.9, 0.2, 0.4]])
    got = cxcywh_to_pixels(boxes, width=100, height=50)
    # second box leaves the frame at the left and bottom: clipped to 0 and 50
    np.testing.assert_allclose(got, [[40, 15, 60, 35], [0, 35, 15, 50]])


def test_interpolate_boxes_holds_the_ends_and_is_linear_between():
    ids = np.array([6, 2])  # unsorted on purpose
    boxes = np.array([[4.0, 0, 8, 8], [0.0, 0, 4, 4]])
    got = interpolate_boxes(ids, boxes, start=0, end=9)
    assert sorted(got) == list(range(9))
    assert got[0] == got[1] == got[2] == [0.0, 0.0, 4.0, 4.0]
    assert got[3] == [1.0, 0.0, 5.0, 5.0]  # a quarter of the way from 2 to 6
    assert got[4] == [2.0, 0.0, 6.0, 6.0]
    assert got[6] == got[7] == got[8] == [4.0, 0.0, 8.0, 8.0]


# ------------------------------------------------------------------ predict_dataset
WIDTH, HEIGHT = 100, 50
CLIP_SPANS = np.array([[4, 14], [14, 24], [24, 34], [34, 44]])
TD, TS = len(CLIP_SPANS), 4
# Per query: stored native frame ids (so the number of passes) and the proposals that win
# under averaged probabilities (what prediction must use), averaged logits, and single passes.
STORED = {0: np.arange(4, 44, 4), 1: np.arange(4, 44, 8), 2: np.arange(4, 44, 3)}
PROB_WINS, LOGIT_WINS = {0: (1, 2), 1: (0, 1), 2: (2, 3)}, {0: (0, 0), 1: (1, 1), 2: (0, 3)}


def _width(frame_id: float) -> float:
    return 0.1 + 0.01 * frame_id  # normalized box width, linear in the native frame id


def _sample(index: int) -> Sample:
    return make_sample(
        f"q{index}",
        (8, 20),
        video_id=f"v{index}",
        video_path=f"videos/v{index}.mp4",
        frame_count=50,
        width=WIDTH,
        height=HEIGHT,
        segment=(4, 44),
        caption="the thing",
    )


class FakeDataset:
    num_frames = TS

    def __init__(self) -> None:
        self.samples = [_sample(i) for i in STORED]

    def __len__(self) -> int:
        return len(self.samples)

    def stored_frame_ids(self, index: int) -> np.ndarray:
        return STORED[index]

    def pass_items(self, index: int, passes: list[np.ndarray]) -> list[dict]:
        return [
            {
                "index": index,
                "text": torch.zeros(2, 3),
                "text_mask": torch.ones(2, dtype=torch.bool),
                "frame_idx": torch.from_numpy(idx),
                "frame_ids": torch.from_numpy(STORED[index][idx]),
                "pass": torch.tensor(p),
                "clip_spans": torch.from_numpy(CLIP_SPANS),
            }
            for p, idx in enumerate(passes)
        ]


def _logits(index: int, pass_no: int) -> torch.Tensor:
    """Every pass puts logit 1.5 on the probability winner (mean probability 0.818); the logit
    winner gets 13 in pass 0 and -2 in the others, so its mean probability is at most
    (1 + 0.119) / 2 = 0.56 while its mean logit, (13 - 2 (P - 1)) / P >= 1.75 for P <= 4
    passes, and pass 0 alone both prefer it."""
    logits = torch.full((TD, TD), -5.0)
    logits[PROB_WINS[index]] = 1.5
    logits[LOGIT_WINS[index]] = 13.0 if pass_no == 0 else -2.0
    return logits


class FakeModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int]] = []

    def forward(self, batch: dict) -> dict:
        self.batches.append(batch["index"].tolist())
        width = _width(batch["frame_ids"].double()).float()
        half = torch.full_like(width, 0.5)
        maps = [_logits(int(i), int(p)) for i, p in zip(batch["index"], batch["pass"], strict=True)]
        return {
            "pred_boxes": torch.stack([half, half, width, torch.full_like(width, 0.2)], -1),
            "score_map": torch.stack(maps),
            "map_mask": proposal_mask(TD, [TD - 1]),
        }


@pytest.mark.parametrize("batch_size", [1, 3, 8, 100])
def test_predict_dataset_by_hand(batch_size):
    model = FakeModel()
    got = predict_dataset(model, FakeDataset(), batch_size=batch_size, progress=False)
    passes = {i: math.ceil(len(s) / TS) for i, s in STORED.items()}  # 3, 2, 4
    assert sum(len(b) for b in model.batches) == sum(passes.values())
    assert all(len(b) <= batch_size for b in model.batches)
    if batch_size == 3:
        assert model.batches == [[0, 0, 0], [1, 1, 2], [2, 2, 2]]  # mixing queries
    assert list(got) == ["q0", "q1", "q2"]
    for index, stored in STORED.items():
        pred = got[f"q{index}"]
        i, j = PROB_WINS[index]  # clips i..j inclusive
        assert pred["tube"] == [int(CLIP_SPANS[i][0]), int(CLIP_SPANS[j][1])]
        assert sorted(int(f) for f in pred["boxes"]) == list(range(4, 44))
        for frame, box in pred["boxes"].items():
            # linear in the frame id between stored frames, held after the last one
            w = _width(min(int(frame), int(stored[-1])))
            want = [(0.5 - w / 2) * WIDTH, 0.4 * HEIGHT, (0.5 + w / 2) * WIDTH, 0.6 * HEIGHT]
            np.testing.assert_allclose(box, want, rtol=0, atol=1e-4, err_msg=f"q{index} {frame}")


def test_the_fake_maps_tell_the_three_rules_apart():
    # guards the test above: its expected spans come only from averaging probabilities
    mask = proposal_mask(TD, [TD - 1])
    for index, stored in STORED.items():
        maps = torch.stack([_logits(index, p) for p in range(math.ceil(len(stored) / TS))])
        argmax = [
            divmod(int(m.masked_fill(~mask, -1e9).argmax()), TD)
            for m in (maps.sigmoid().mean(0), maps.mean(0), maps[0])
        ]
        assert argmax == [PROB_WINS[index], LOGIT_WINS[index], LOGIT_WINS[index]]
