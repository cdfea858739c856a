"""Event-free training queries (stvg.train.negatives) and the presence loss, by hand."""

import math

import numpy as np
import pytest
import torch
from sample_factory import make_sample

from stvg.errors import InputError
from stvg.models.csdvl import CSDVLConfig, build_model
from stvg.train.config import TrainConfig, resolve
from stvg.train.losses import compute_losses, presence_loss
from stvg.train.negatives import (
    WithNegatives,
    caption_key,
    draw_negative,
    draw_outside,
    is_negative,
    make_negative,
    outside_frames,
    outside_side,
    stretch,
    video_captions,
)


def three_videos():
    """Video a: "the red square jumps", "the blue cross spins"; b: the same first sentence in
    other case and spacing, and "the green triangle walks left"; c: "the blue cross spins"."""
    return [
        make_sample("a0", video_id="a", caption="the red square jumps"),
        make_sample("a1", video_id="a", caption="the blue cross spins"),
        make_sample("b0", video_id="b", caption="The red  square JUMPS"),
        make_sample("b1", video_id="b", caption="the green triangle walks left"),
        make_sample("c0", video_id="c", caption="the blue cross spins"),
    ]


def test_caption_key_ignores_case_and_spacing():
    assert caption_key("  The red\tsquare  JUMPS ") == "the red square jumps"


def test_the_valid_pairs_by_hand():
    samples = three_videos()
    captions = video_captions(samples)
    valid = {(a, b) for a in range(5) for b in range(5) if is_negative(samples, captions, a, b)}
    # a (0, 1) takes only b's "green triangle" (3); b (2, 3) takes "blue cross" (1, 4);
    # c (4) takes "red square" (0, 2) and "green triangle" (3)
    want = {(0, 3), (1, 3), (2, 1), (2, 4), (3, 1), (3, 4), (4, 0), (4, 2), (4, 3)}
    assert valid == want


def test_drawn_negatives_are_never_a_true_match():
    samples = three_videos()
    captions = video_captions(samples)
    valid = {(0, 3), (1, 3), (2, 1), (2, 4), (3, 1), (3, 4), (4, 0), (4, 2), (4, 3)}
    drawn = {
        draw_negative(samples, captions, (0, epoch, k)) for epoch in range(5) for k in range(40)
    }
    assert drawn <= valid
    assert len(drawn) > 1  # draws vary with the key
    # the same key, the same pair (a resumed run sees the same negatives)
    assert draw_negative(samples, captions, (3, 1, 7)) == draw_negative(
        samples, captions, (3, 1, 7)
    )


def test_the_scan_finds_the_only_valid_pair():
    # only (1, 0) is valid: video y does not carry "the red square jumps"
    samples = [
        make_sample("x0", video_id="x", caption="the red square jumps"),
        make_sample("y0", video_id="y", caption="the blue cross spins"),
        make_sample("x1", video_id="x", caption="the blue cross spins"),
    ]
    captions = video_captions(samples)
    for k in range(20):
        assert draw_negative(samples, captions, (0, 0, k)) == (1, 0)


def test_no_negative_when_every_sentence_is_everywhere():
    samples = [
        make_sample("x0", video_id="x", caption="the red square jumps"),
        make_sample("y0", video_id="y", caption="the red square jumps"),
    ]
    with pytest.raises(InputError, match="no negative"):
        draw_negative(samples, video_captions(samples), (0, 0, 0))


def test_a_negative_item_has_no_tube_and_the_other_sentence():
    item = {
        "text": torch.ones(3, 2),
        "text_mask": torch.ones(3, dtype=torch.bool),
        "boxes": torch.full((4, 4), 0.5),
        "box_mask": torch.tensor([False, True, True, False]),
        "frame_in_tube": torch.tensor([False, True, True, False]),
        "clip_in_tube": torch.tensor([True, False]),
        "span": torch.tensor([0.25, 0.75]),
        "image": torch.zeros(4, 1, 1, 1),
    }
    out = make_negative(item, np.full((2, 2), 7.0), np.array([True, False]))
    assert out["text"].tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert out["text_mask"].tolist() == [True, False]
    for key in ("box_mask", "frame_in_tube", "clip_in_tube"):
        assert not out[key].any()
    assert out["span"].tolist() == [0.0, 0.0] and not out["boxes"].any()
    assert out["image"] is item["image"]
    assert item["frame_in_tube"].tolist() == [False, True, True, False]  # the input is untouched


class FakeBase:
    """A stand-in FeatureDataset: item i has ``image`` i and text ``10 + i``."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def item(self, index, epoch=None):
        return {
            "image": torch.tensor([float(index)]),
            "text": torch.tensor([[10.0 + index]]),
            "text_mask": torch.tensor([True]),
            "boxes": torch.ones(2, 4),
            "box_mask": torch.ones(2, dtype=torch.bool),
            "frame_in_tube": torch.ones(2, dtype=torch.bool),
            "clip_in_tube": torch.ones(1, dtype=torch.bool),
            "span": torch.tensor([0.0, 1.0]),
        }

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, None)
        return self.item(index, epoch)

    def query_states(self, index):
        return {"text": np.array([[10.0 + index]]), "text_mask": np.array([True])}


def test_with_negatives_serves_positives_then_valid_negatives():
    samples = three_videos()
    data = WithNegatives(FakeBase(samples), 0.4, seed=3)
    assert len(data) == 5 + 2  # round(0.4 * 5)
    assert data[(1, 0)]["frame_in_tube"].all()  # a positive as it is
    for epoch in range(3):
        for index in (5, 6):
            item = data[(index, epoch)]
            anchor, source = data.pair(index - 5, epoch)
            assert item["image"].item() == anchor and item["text"].item() == 10 + source
            assert is_negative(samples, data.captions, anchor, source)
            assert not item["frame_in_tube"].any()


def test_presence_loss_is_the_bce_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    in_tube = torch.tensor([[True, False], [True, True]])
    # sigmoid(0) = 1/2, sigmoid(log 3) = 3/4: -log(1/2), -log(1/4), -log(3/4), -log(1/2)
    want = (math.log(2) + math.log(4) + math.log(4 / 3) + math.log(2)) / 4
    assert presence_loss(logits, in_tube).item() == pytest.approx(want, rel=1e-6)


def tiny_model(presence: bool):
    torch.manual_seed(0)
    cfg = CSDVLConfig(d_model=16, n_heads=2, n_layers=1, n_encoder_layers=1, dim_feedforward=16,
                      dropout=0.0, image_channels=3, text_channels=5, motion_channels=4, d_map=8,
                      map_layers=1, map_kernel=3, presence_head=presence)  # fmt: skip
    return build_model(cfg).eval()


def tiny_batch():
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(2, 4, 3, 2, 2, generator=g),
        "text": torch.randn(2, 3, 5, generator=g),
        "text_mask": torch.tensor([[True, True, False], [True, True, True]]),
        "motion": torch.randn(2, 2, 4, 2, 2, generator=g),
        "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(2, 4, 1),
        "box_mask": torch.tensor([[False, True, True, False], [True, True, False, False]]),
        "frame_in_tube": torch.tensor([[False, True, True, False], [True, True, False, False]]),
        "span": torch.tensor([[0.25, 0.75], [0.0, 0.5]]),
    }


def test_default_off_leaves_outputs_and_losses_unchanged():
    off, on = tiny_model(False), tiny_model(True)
    assert not any("presence" in k for k in off.state_dict())
    missing = on.load_state_dict(off.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("presence_head.") for k in missing)
    batch = tiny_batch()
    with torch.no_grad():
        a, b = off(batch), on(batch)
    assert "presence_logits" not in a and b["presence_logits"].shape == (2, 4)
    assert set(b) - set(a) == {"presence_logits"}
    for key in a:
        assert torch.equal(a[key], b[key]), key
    plain = compute_losses(a, batch)
    assert set(plain) == {"l1", "giou", "tg", "ta"}
    with_head = compute_losses(b, batch)  # the head alone adds no term
    assert {k: v.item() for k, v in with_head.items()} == {k: v.item() for k, v in plain.items()}
    terms = compute_losses(b, batch, presence=True)
    want = presence_loss(b["presence_logits"], batch["frame_in_tube"])
    assert terms["presence"].item() == pytest.approx(want.item())
    with pytest.raises(InputError, match="presence_logits"):
        compute_losses(a, batch, presence=True)


def test_settings_default_off_and_checked():
    config = TrainConfig()
    assert config.negatives == 0 and config.loss_presence == 0
    assert config.loss_weights()["presence"] == 0
    on = resolve("synthetic", ["negatives=0.5", "loss_presence=2", "model.presence_head=true"])
    assert on.loss_weights()["presence"] == 2.0 and on.to_json()["negatives"] == 0.5
    with pytest.raises(InputError, match="presence_head"):
        resolve("synthetic", ["loss_presence=1"])
    with pytest.raises(InputError, match="negatives"):
        resolve("synthetic", ["negatives=-1"])
    with pytest.raises(InputError, match="CSDVL"):
        resolve("synthetic", ["model_name=cgstvg", "negatives=0.5"])


# ------------------------------------------------------------------ outside negatives


def test_outside_side_is_the_longer_free_part():
    before = make_sample("x", segment=(0, 60), tube=(40, 50))
    after = make_sample("y", segment=(0, 60), tube=(5, 20))
    tie = make_sample("z", segment=(10, 50), tube=(20, 40))
    assert outside_side(before) == (0, 40)
    assert outside_side(after) == (20, 60)
    assert outside_side(tie) == (10, 20)


def test_stretch_spreads_in_order():
    assert stretch(np.array([7, 8, 9]), 6).tolist() == [7, 7, 8, 8, 9, 9]  # floor((k+.5)/2)
    assert stretch(np.array([1, 2, 3, 4]), 2).tolist() == [2, 4]  # floor(1), floor(3)


def test_outside_frames_need_a_third_of_the_segment():
    stored = np.arange(0, 60, 5)  # 0, 5, ..., 55
    wide = make_sample("w", segment=(0, 60), tube=(0, 30))  # [30, 60): 50 %
    assert stored[outside_frames(wide, stored, 0.3)].tolist() == [30, 35, 40, 45, 50, 55]
    narrow = make_sample("n", segment=(0, 60), tube=(10, 50))  # sides of 10: 17 %
    assert outside_frames(narrow, stored, 0.3) is None


def test_an_outside_negative_sees_only_the_free_side(tmp_path):
    from stvg.bench.train import _write_random_store
    from stvg.features.dataset import FeatureDataset

    # 16 stored frames 0, 2, ..., 30 of a 32-frame segment, 16 clips of 2 frames, tube [8, 16):
    # the free side is [16, 32), frames 16..30 (stored indices 8..15), clips 8..15
    _write_random_store(tmp_path / "s", videos=2, frames=16)
    base = FeatureDataset(tmp_path / "s", "train", num_frames=4, in_memory=True)
    data = WithNegatives(base, 0.0, seed=1, outside=1.0)
    assert len(data) == 4 + 4
    for epoch in range(2):
        for index in range(4, 8):
            item = data[(index, epoch)]
            anchor, frames = data.outside(index - 4, epoch)
            assert frames.tolist() == list(range(8, 16))
            # Ts 4 of the 8 free frames, stretch: floor((k + .5) * 2) = 1, 3, 5, 7
            assert item["frame_ids"].tolist() == [18, 22, 26, 30]
            # Td 16 slots of the 8 free clips: each twice, in order
            spans = item["clip_spans"].tolist()
            assert spans == [[16 + 2 * (j // 2), 18 + 2 * (j // 2)] for j in range(16)]
            whole = base.item(anchor)
            assert torch.equal(item["motion"], whole["motion"][8 + torch.arange(16) // 2])
            assert torch.equal(
                item["image"], base.item(anchor, frames=np.array([9, 11, 13, 15]))["image"]
            )
            assert torch.equal(item["text"], whole["text"])  # its own sentence
            # frame 18 is the center-nearest of clip [18, 20) (slots 2, 3): the first, 2
            assert item["frame_clip_index"].tolist() == [2, 6, 10, 14]
            for key in ("box_mask", "frame_in_tube", "clip_in_tube"):
                assert not item[key].any()
            assert item["span"].tolist() == [0.0, 0.0]
    assert data[(0, 0)]["frame_in_tube"].any()  # positives as they are
    # the same key, the same draw
    assert data.outside(2, 5)[0] == data.outside(2, 5)[0]


def test_no_outside_negative_without_a_free_side(tmp_path):
    samples = [make_sample(f"s{i}", segment=(0, 60), tube=(10, 50)) for i in range(3)]

    class Base:
        def __init__(self):
            self.samples = samples

        def stored_frame_ids(self, index):
            return np.arange(0, 60, 5)

    with pytest.raises(InputError, match="outside negative"):
        draw_outside(Base(), (0, 0, 0, 1), 0.3)


def test_outside_negatives_setting_is_checked():
    on = resolve("synthetic", ["negatives_outside=0.5"])
    assert on.to_json()["negatives_outside"] == 0.5
    with pytest.raises(InputError, match="negatives_outside"):
        resolve("synthetic", ["negatives_outside=-0.1"])
    with pytest.raises(InputError, match="CSDVL"):
        resolve("synthetic", ["model_name=costa", "negatives_outside=0.5"])
