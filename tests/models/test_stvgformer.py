"""STVGFormer: the report's eqs. (2)-(6) against direct computations with hand-computed numbers,
its config (alpha 1, test_frames_scale 2), CSDVL's parameters and no more, gradients, its zoo
weights, and a tiny overfit."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from stvg.errors import InputError
from stvg.evaluate.predict import run_frames_per_pass
from stvg.models.collaboration import StaticToDynamic
from stvg.models.csdvl import CSDVL, MODEL_PRESETS, CSDVLConfig
from stvg.models.heads import best_span, proposal_map
from stvg.models.stvgformer import STVGFormer, STVGFormerConfig, build_stvgformer
from stvg.models.stvgformer_losses import STVGFORMER_LOSS_WEIGHTS, stvgformer_losses
from stvg.models.zoo import MODELS
from stvg.train.config import resolve
from stvg.train.losses import build_targets, compute_losses, stack_targets, total_loss

B, TS, TD, H, W, L = 2, 6, 3, 3, 4, 5
TINY = dict(
    d_model=32, n_heads=4, n_layers=2, n_encoder_layers=1, dim_feedforward=48, dropout=0.0,
    image_channels=8, text_channels=12, motion_channels=10, d_map=16, map_layers=2, map_kernel=3,
)  # fmt: skip


def inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(B, TS, 8, H, W, generator=g),
        "text": torch.randn(B, L, 12, generator=g),
        "text_mask": torch.tensor([[True] * L, [True] * 3 + [False] * 2]),
        "motion": torch.randn(B, TD, 10, 2, 2, generator=g),
    }


def targets() -> dict[str, torch.Tensor]:
    out = []
    for (s, e), (a, b) in (((0, 2), (0, 4)), ((1, 3), (2, 6))):  # clips, frames
        in_tube = torch.zeros(TS, dtype=torch.bool)
        in_tube[a:b] = True
        boxes = torch.tensor([0.5, 0.5, 0.3, 0.4]).repeat(TS, 1)
        out.append(build_targets((s, e), in_tube, boxes, TD))
    return stack_targets(out)


# ----------------------------------------------------------------------------- config
def test_presets_are_csdvls_with_eq_2_unscaled():
    for name in MODEL_PRESETS:
        ours, theirs = STVGFormerConfig.from_preset(name), CSDVLConfig.from_preset(name)
        assert ours.alpha == 1.0 and ours.test_frames_scale == 2
        mine = {k: v for k, v in ours.to_dict().items() if k not in ("alpha", "test_frames_scale")}
        assert mine == {k: v for k, v in theirs.to_dict().items() if k != "alpha"}
    assert CSDVLConfig.from_preset("hcstvg-v2").alpha == 0.1  # what STVGFormer does not do
    config = STVGFormerConfig(**TINY, test_frames_scale=3)
    assert type(build_stvgformer(config.to_dict())) is STVGFormer
    assert STVGFormerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="test_frames_scale"):
        STVGFormerConfig(test_frames_scale=0)
    with pytest.raises(InputError, match="STVGFormerConfig d_model"):
        STVGFormerConfig(d_model=30)


def test_test_passes_show_twice_the_training_frames():
    stvgformer = STVGFormerConfig().to_dict()
    assert run_frames_per_pass({"num_frames": 48, "frames_per_pass": None}, stvgformer) == 96
    assert run_frames_per_pass({"num_frames": 48, "frames_per_pass": 40}, stvgformer) == 40
    assert run_frames_per_pass({"num_frames": 48}, CSDVLConfig().to_dict()) == 48


def test_the_model_is_csdvl_with_no_parameter_of_its_own():
    torch.manual_seed(0)
    ours = build_stvgformer(STVGFormerConfig(**TINY)).eval()
    theirs = CSDVL(CSDVLConfig(**TINY)).eval()
    shapes = {k: v.shape for k, v in theirs.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
    theirs.load_state_dict(ours.state_dict())
    with torch.no_grad():
        a, b = ours(inputs()), theirs(inputs())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_parameter_gets_a_gradient_from_the_report_loss():
    torch.manual_seed(0)
    net = build_stvgformer(STVGFormerConfig(**TINY)).train()
    terms = stvgformer_losses(net(inputs()), targets())
    total_loss(terms, STVGFORMER_LOSS_WEIGHTS).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing


# ----------------------------------------------------------------------------- equations
def test_eq2_static_to_dynamic_by_hand():
    # F~ = LayerNorm(F + A (.) FC(F)), A replicated over the d channels; d = 2 so that
    # LayerNorm of (x, y) is (-1, 1) or (1, 1) * sign(y - x) (weight 1, bias 0)
    block = StaticToDynamic(2)
    with torch.no_grad():
        block.fc.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # FC swaps the channels
        block.fc.bias.zero_()
    fv = torch.tensor([[[[1.0, 4.0], [3.0, 2.0]]]])  # [B=1, Td=1, S=2, d=2]
    attn = torch.tensor([[[0.5, 3.0]]])  # [1, 1, 2]
    # cell 0: (1, 4) + 0.5 * (4, 1) = (3, 4.5) -> (-1, 1); cell 1: (3, 2) + 3 * (2, 3) = (9, 11)
    got = block(fv, attn)
    assert torch.allclose(got, torch.tensor([[[[-1.0, 1.0], [-1.0, 1.0]]]]), atol=1e-4)
    attn = torch.tensor([[[0.5, 0.0]]])  # cell 1 untouched: (3, 2) -> (1, -1)
    assert torch.allclose(block(fv, attn)[0, 0, 1], torch.tensor([1.0, -1.0]), atol=1e-4)


def test_eq3_proposal_map_by_hand():
    feats = torch.tensor([[[1.0], [2.0], [6.0]]])  # F_d of 3 clips, one channel
    mask = torch.ones(3, 3, dtype=torch.bool).triu()
    m = proposal_map(feats, mask)[0, 0]
    assert m.tolist() == [[1.0, 1.5, 3.0], [0.0, 2.0, 4.0], [0.0, 0.0, 6.0]]


def hand_case() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One query, 4 frames (GT box on frame 1; frames 1-2 in the tube), 2 clips (span = the
    first half: clip 0)."""
    pred = torch.tensor([[0.5, 0.5, 0.4, 0.4]]).repeat(4, 1)
    outputs = {
        "pred_boxes": pred[None],
        "score_map": torch.tensor([[[2.0, -1.0], [-1.0e4, 0.0]]]),
        "map_mask": torch.ones(2, 2, dtype=torch.bool).triu(),
        "frame_logits": torch.tensor([[0.0, math.log(2), math.log(3), math.log(4)]]),
        "clip_logits": torch.zeros(1, 2),
    }
    batch = {
        "boxes": torch.tensor([[0.6, 0.5, 0.4, 0.4]]).repeat(4, 1)[None],
        "box_mask": torch.tensor([[False, True, False, False]]),
        "frame_in_tube": torch.tensor([[False, True, True, False]]),
        "span": torch.tensor([[0.0, 0.5]]),
    }
    return outputs, batch


def test_eqs_4_to_6_by_hand():
    outputs, batch = hand_case()
    terms = stvgformer_losses(outputs, batch)
    assert list(terms) == ["l1", "giou", "aux_static", "tg", "aux_dynamic"]
    # eq. (4): boxes xyxy (.3,.3,.7,.7) vs (.4,.3,.8,.7): L1 |.5 - .6| = .1; IoU .12 / .2 = .6,
    # the hull (.5 x .4) equals the union, so GIoU = .6 and 1 - GIoU = .4
    assert terms["l1"].item() == pytest.approx(0.1, abs=1e-6)
    assert terms["giou"].item() == pytest.approx(0.4, abs=1e-6)
    # eq. (6), static: softmax over the 4 frames is (1, 2, 3, 4) / 10; m = (0, 1, 1, 0)
    aux_static = -(math.log(0.2) + math.log(0.3)) / 2
    assert terms["aux_static"].item() == pytest.approx(aux_static, abs=1e-6)
    # eq. (6), dynamic: two equal clip logits -> 1/2 each; only clip 0 is in the span
    assert terms["aux_dynamic"].item() == pytest.approx(math.log(2), abs=1e-6)
    # eq. (5), L_tg: proposals (0,0) (0,1) (1,1) have IoU 1, .5, 0 with clip 0 -> 2D-TAN's
    # targets (IoU - .5) / .5 clipped: 1, 0, 0; BCE of logits 2, -1, 0 averaged
    tg = (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)) + math.log(2)) / 3
    assert terms["tg"].item() == pytest.approx(tg, abs=1e-6)
    # L = L_s + L_d with lambda = 5, 2, 0.5, 5, 1
    want = 5 * 0.1 + 2 * 0.4 + 0.5 * aux_static + 5 * tg + 1 * math.log(2)
    got = total_loss(terms, STVGFORMER_LOSS_WEIGHTS)
    assert got.item() == pytest.approx(want, abs=1e-5)
    # the same total as CSDVL's 5 L1 + 2 GIoU + 5 L_tg + 1 L_ta (L_ta = 0.5 static + 1 dynamic)
    assert total_loss(compute_losses(outputs, batch)).item() == pytest.approx(want, abs=1e-5)


def test_zoo_weights_and_terms():
    config = resolve("synthetic", ["model_name=stvgformer"])
    entry = MODELS["stvgformer"]
    assert entry.config is STVGFormerConfig and entry.build is build_stvgformer
    weights = {"l1": 5.0, "giou": 2.0, "aux_static": 0.5, "tg": 5.0, "aux_dynamic": 1.0}
    assert entry.weights(config) == {**weights, "att": 1.0}  # the synthetic preset's loss_att
    config = resolve("hcstvg-v2", ["model_name=stvgformer", "aux_loss=true", "loss_l1=9"])
    assert entry.weights(config) == {**weights, "att": 0.0, "aux_l1": 5.0, "aux_giou": 2.0}
    torch.manual_seed(0)
    net = build_stvgformer(STVGFormerConfig(**TINY))
    terms = entry.losses(net(inputs(), aux=True), targets(), config)
    assert set(terms) == {*weights, "aux_l1", "aux_giou"}


# ----------------------------------------------------------------------------- overfit
@pytest.mark.slow  # 60 steps: ~3.5 s of CPU time
def test_overfits_four_samples(one_thread):
    torch.manual_seed(0)
    n, ts, td = 4, 8, 4
    config = {**TINY, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32, "d_map": 8}
    config.update(map_layers=1, image_channels=16, text_channels=24, motion_channels=20)
    net = build_stvgformer(STVGFormerConfig(**config)).train()
    batch = {
        "image": torch.randn(n, ts, 16, 3, 4),
        "text": torch.randn(n, 6, 24),
        "text_mask": torch.ones(n, 6, dtype=torch.bool),
        "motion": torch.randn(n, td, 20, 2, 2),
    }
    spans = [(0, 2), (1, 3), (2, 4), (1, 2)]  # clip units; 2 frames per clip
    items = []
    for s, e in spans:
        in_tube = torch.zeros(ts, dtype=torch.bool)
        in_tube[2 * s : 2 * e] = True
        boxes = torch.cat((torch.rand(ts, 2) * 0.5 + 0.25, torch.rand(ts, 2) * 0.3 + 0.1), 1)
        items.append(build_targets((s, e), in_tube, boxes, td))
    goal = stack_targets(items)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    start = time.perf_counter()
    first = {k: v.item() for k, v in stvgformer_losses(net(batch), goal).items()}
    for _ in range(60):
        loss = total_loss(stvgformer_losses(net(batch), goal), STVGFORMER_LOSS_WEIGHTS)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        out = net(batch)
    last = {k: v.item() for k, v in stvgformer_losses(out, goal).items()}
    print(f"60 steps in {time.perf_counter() - start:.1f}s; first {first}; last {last}")
    assert last["l1"] < first["l1"] / 4 and last["giou"] < first["giou"] / 4
    t = goal["map_target"][:, out["map_mask"]].clamp(1e-6, 1 - 1e-6)
    floor = F.binary_cross_entropy(t, t).item()  # the BCE's floor: its targets' entropy
    assert last["tg"] - floor < (first["tg"] - floor) / 4
    # eq. (6)'s floor: the softmax spread evenly over the k positives, -log(1/k)
    for key, per_clip in (("aux_static", 2), ("aux_dynamic", 1)):
        low = sum(math.log(per_clip * (e - s)) for s, e in spans) / 4
        assert last[key] - low < (first[key] - low) / 4, key
    start_, end_, _ = best_span(out["score_map"], out["map_mask"])
    assert list(zip(start_.tolist(), end_.tolist(), strict=True)) == spans
