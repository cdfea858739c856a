"""Windows are ranked by the presence of the described event when the run has a presence head
(stvg.models.zoo.presence_score through predict_dataset's scores), by the span's own score
otherwise. Numbers by hand."""

import math

import numpy as np
import pytest
import torch
from sample_factory import make_sample

from stvg.evaluate.predict import predict_dataset
from stvg.ground.predict import best_window
from stvg.models.zoo import presence_score


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_presence_score_by_hand():
    stored = np.array([0, 5, 10, 15])
    records = [{"presence": torch.tensor([0.2, 0.6])}, {"presence": torch.tensor([0.4, 0.8])}]
    passes = [np.array([0, 2]), np.array([1, 3])]  # frame k's probability: 0.2, 0.4, 0.6, 0.8
    assert presence_score(records, passes, stored, (5, 15)) == pytest.approx(0.5)  # frames 5, 10
    assert presence_score(records, passes, stored, (0, 20)) == pytest.approx(0.5)
    assert presence_score(records, passes, stored, (15, 16)) == pytest.approx(0.8)
    # no stored frame inside: the highest frame's
    assert presence_score(records, passes, stored, (11, 14)) == pytest.approx(0.8)
    # a frame in two passes gets their mean: frame 1 is 0.6 in pass 0, 0.4 in pass 1
    twice = [np.array([0, 1]), np.array([1, 2])]
    assert presence_score(records, twice, stored, (5, 6)) == pytest.approx(0.5)
    assert presence_score(records, twice, stored, (10, 11)) == pytest.approx(0.8)
    assert presence_score([{"prob": torch.zeros(2, 2)}], passes[:1], stored, (0, 5)) is None


class Windows:
    """Two windows (queries) of a 10-frame segment, stored frames 0, 2, 4, 6, 8, two clips."""

    num_frames = 5

    def __init__(self):
        self.samples = [make_sample(f"w{i}", (0, 10), caption="x") for i in range(2)]

    def __len__(self):
        return 2

    def stored_frame_ids(self, index):
        return np.array([0, 2, 4, 6, 8])

    def pass_items(self, index, passes):
        return [
            {
                "index": index,
                "text": torch.zeros(1, 1),
                "text_mask": torch.ones(1, dtype=torch.bool),
                "clip_spans": torch.tensor([[0, 5], [5, 10]]),
            }
            for _ in passes
        ]


class Stub(torch.nn.Module):
    """Window 0: a confident span [0, 5) (logit 3) and presence logits -2 everywhere; window 1:
    a weaker span [5, 10) (logit 1) and presence logit 0 on its frames 6 and 8."""

    def __init__(self, presence: bool):
        super().__init__()
        self.presence = presence

    def forward(self, batch):
        b = len(batch["index"])
        score_map = torch.full((b, 2, 2), -3.0)
        presence = torch.full((b, 5), -2.0)
        for k, index in enumerate(batch["index"].tolist()):
            if index == 0:
                score_map[k, 0, 0] = 3.0
            else:
                score_map[k, 1, 1] = 1.0
                presence[k, 3:] = 0.0
        out = {
            "pred_boxes": torch.tensor([0.5, 0.5, 0.2, 0.2]).repeat(b, 5, 1),
            "score_map": score_map,
            "map_mask": torch.tensor([[True, True], [False, True]]),
        }
        if self.presence:
            out["presence_logits"] = presence
        return out


@pytest.mark.parametrize("presence", [True, False])
def test_windows_choose_by_presence_when_present(presence):
    scores, span_scores = {}, {}
    found = predict_dataset(
        Stub(presence), Windows(), progress=False, scores=scores, span_scores=span_scores
    )
    assert found["w0"]["tube"] == [0, 5] and found["w1"]["tube"] == [5, 10]
    assert span_scores == pytest.approx({"w0": sigmoid(3), "w1": sigmoid(1)})
    if presence:
        assert scores == pytest.approx({"w0": sigmoid(-2), "w1": 0.5})
    else:
        assert scores == span_scores
    candidates = [((0, 10), "w0"), ((5, 15), "w1")]
    assert best_window(candidates, scores) == candidates[1 if presence else 0]


def test_presence_by_frame_keeps_the_seen_frames():
    from stvg.models.zoo import presence_by_frame

    stored = np.array([0, 5, 10, 15])
    records = [{"presence": torch.tensor([0.2, 0.6])}, {"presence": torch.tensor([0.4, 0.8])}]
    ids, prob = presence_by_frame(records, [np.array([0, 1]), np.array([1, 3])], stored)
    assert ids.tolist() == [0, 5, 15]  # frame 10 unseen
    assert prob.tolist() == pytest.approx([0.2, 0.5, 0.8])  # frame 5: (0.6 + 0.4) / 2


def test_window_presence_scores_average_each_frame_over_its_windows():
    from stvg.ground.predict import window_presence_scores

    # window a sees frames 0, 10; window b frames 10, 20, 30; c frame 30 alone.
    # Frame 10: (0.6 + 0.2) / 2 = 0.4; frame 30: (0.5 + 0.1) / 2 = 0.3.
    candidates = [((0, 20), "a"), ((10, 40), "b"), ((30, 40), "c")]
    presence = {
        "a": (np.array([0, 10]), np.array([0.2, 0.6])),
        "b": (np.array([10, 20, 30]), np.array([0.2, 0.9, 0.5])),
        "c": (np.array([30]), np.array([0.1])),
    }
    scores = window_presence_scores(candidates, presence)
    assert scores == pytest.approx({"a": (0.2 + 0.4) / 2, "b": (0.4 + 0.9 + 0.3) / 3, "c": 0.3})


def test_window_presence_prefers_the_held_event_to_a_short_burst():
    """A window holding 8 of its 10 stored frames at presence 0.7 (most of an event) outranks
    one with a 2-frame burst at 0.95 amid 0.05: 0.7 * 0.8 + 0.05 * 0.2 = 0.57 against
    0.95 * 0.2 + 0.05 * 0.8 = 0.23 (the mean inside the burst alone would rank it first)."""
    from stvg.ground.predict import best_window, window_presence_scores

    frames = np.arange(10)
    event = np.where(frames < 8, 0.7, 0.05)
    burst = np.where(frames >= 8, 0.95, 0.05)
    candidates = [((0, 10), "burst"), ((100, 110), "event")]
    presence = {"burst": (frames, burst), "event": (frames + 100, event)}
    scores = window_presence_scores(candidates, presence)
    assert scores == pytest.approx({"burst": 0.23, "event": 0.57})
    assert best_window(candidates, scores) == candidates[1]
