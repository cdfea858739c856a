"""CoSTA's equations against direct computations (loops over indices, formulas written out)."""

import math

import pytest
import torch

from stvg.errors import InputError
from stvg.models.collaboration import GridSizes
from stvg.models.costa import (
    COSTA_PRESETS,
    CoSTAConfig,
    build_costa,
    predict_span,
    stored_frame_span,
)
from stvg.models.costa_decoder import (
    ConcatCrossAttention,
    EventEmbedding,
    SpatialDecoder,
    TemporalDecoder,
    anchor_sine,
    event_labels,
    frame_span,
)
from stvg.models.costa_encoder import SpaceTimeFusionEncoder, SpaceTimeVideoFusion
from stvg.train.losses_costa import compute_costa_losses, costa_total_loss

D = 32


def pe(i: int, k: int, d: int = D) -> float:
    """The transformer paper's sine encoding, channel ``k`` of position ``i``."""
    angle = i / 10000 ** ((k - k % 2) / d)
    return math.sin(angle) if k % 2 == 0 else math.cos(angle)


def tiny_config(**overrides) -> CoSTAConfig:
    values = dict(
        d_model=D,
        n_heads=4,
        n_encoder_layers=1,
        n_temporal_layers=1,
        n_spatial_layers=2,
        dim_feedforward=64,
        dropout=0.0,
        image_channels=16,
        text_channels=24,
        motion_channels=20,
    )
    values.update(overrides)
    return CoSTAConfig(**values)


def tiny_batch(b: int = 2, ts: int = 6, td: int = 3, h: int = 3, w: int = 4) -> dict:
    fit = torch.zeros(b, ts, dtype=torch.bool)
    fit[:, 1:4] = True
    return {
        "image": torch.randn(b, ts, 16, h, w),
        "text": torch.randn(b, 5, 24),
        "text_mask": torch.ones(b, 5, dtype=torch.bool),
        "motion": torch.randn(b, td, 20, 2, 2),
        "frame_in_tube": fit,
    }


# ----------------------------------------------------------------------------- eq. (1)
def test_eq1_sum_with_feature_norm_per_cell():
    torch.manual_seed(0)
    fusion = SpaceTimeVideoFusion(16, 20, D, "sum_norm")
    b, ts, td, h, w = 2, 4, 2, 3, 2
    image = torch.randn(b, ts, 16, h, w)
    motion = torch.randn(b, td, 20, h, w)  # same grid: the bilinear resize is the identity
    clip = torch.tensor([[0, 0, 1, 1], [1, 0, 1, 0]])
    valid = torch.ones(b, h, w, dtype=torch.bool)
    out = fusion(image, motion, clip, GridSizes.of(valid))
    wx, bx = fusion.image_proj.weight, fusion.image_proj.bias
    wy, by = fusion.motion_proj.weight, fusion.motion_proj.bias

    def ln(v, norm):
        mu = v.mean()
        var = ((v - mu) ** 2).mean()
        return (v - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias

    for bi in range(b):
        for k in range(ts):
            for i in range(h):
                for j in range(w):
                    x = wx @ image[bi, k, :, i, j] + bx
                    y = wy @ motion[bi, clip[bi, k], :, i, j] + by
                    want = ln(x, fusion.image_norm) + ln(y, fusion.motion_norm)
                    torch.testing.assert_close(out[bi, k, i * w + j], want, atol=1e-5, rtol=1e-5)


def test_eq1_other_connections_and_single_backbones():
    torch.manual_seed(1)
    image = torch.randn(1, 2, 16, 2, 2)
    motion = torch.randn(1, 2, 20, 2, 2)
    clip = torch.tensor([[1, 0]])
    sizes = GridSizes.of(torch.ones(1, 2, 2, dtype=torch.bool))
    # frame 1, row 1, column 0 -> token 2; frame 1 reads clip 0
    for mode in ("concat", "hadamard", "2d", "3d"):
        f = SpaceTimeVideoFusion(16, 20, D, mode)
        out = f(image, motion, clip, sizes)[0, 1, 2]
        x = y = None
        if f.image_proj is not None:
            x = f.image_proj.weight @ image[0, 1, :, 1, 0] + f.image_proj.bias
        if f.motion_proj is not None:
            y = f.motion_proj.weight @ motion[0, 0, :, 1, 0] + f.motion_proj.bias
        if mode == "concat":
            want = f.reduce.weight @ torch.cat((x, y)) + f.reduce.bias
        elif mode == "hadamard":
            want = x * y
        else:
            want = x if mode == "2d" else y
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_eq1_motion_fills_the_valid_grid_only():
    """A 1x1 motion map resized bilinearly is constant on the valid cells; padding gets 0."""
    torch.manual_seed(2)
    f = SpaceTimeVideoFusion(16, 20, D, "3d")
    motion = torch.randn(2, 1, 20, 1, 1)
    valid = torch.zeros(2, 3, 4, dtype=torch.bool)
    valid[0] = True
    valid[1, :2, :3] = True
    out = f(
        torch.randn(2, 2, 16, 3, 4),
        motion,
        torch.zeros(2, 2, dtype=torch.long),
        GridSizes.of(valid),
    ).view(2, 2, 3, 4, D)
    for bi in range(2):
        proj = f.motion_proj.weight @ motion[bi, 0, :, 0, 0] + f.motion_proj.bias
        for i in range(3):
            for j in range(4):
                want = proj if valid[bi, i, j] else torch.zeros(D)
                torch.testing.assert_close(out[bi, 1, i, j], want, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- fusion encoder
def test_fusion_encoder_is_per_frame_spatial_then_temporal_over_cls():
    torch.manual_seed(3)
    enc = SpaceTimeFusionEncoder(D, 4, 1, 64, 0.0).eval()
    b, t, h, w, n = 1, 3, 2, 2, 3
    fv = torch.randn(b, t, h * w, D)
    text = torch.randn(b, n, D)
    valid = torch.ones(b, h, w, dtype=torch.bool)
    tmask = torch.ones(b, n, dtype=torch.bool)
    memory, _, _, cls = enc(fv, valid, text, tmask)
    from stvg.models.position import sine_position_2d

    vis_pos = sine_position_2d(valid, D)[0].flatten(0, 1)
    pos = torch.cat((torch.zeros(1, D), vis_pos, torch.zeros(n, D)))[None]
    frames = []
    for k in range(t):  # each frame alone through the spatial layer
        x = torch.cat((enc.cls[None], fv[0, k], text[0]))[None]
        frames.append(enc.spatial[0](x, pos, None)[0])
    time_pos = torch.tensor([[pe(i, k) for k in range(D)] for i in range(t)])[None]
    cls_in = torch.stack([f[0] for f in frames])[None]
    want_cls = enc.temporal[0](cls_in, time_pos, None)
    torch.testing.assert_close(cls, want_cls, atol=1e-5, rtol=1e-5)
    for k in range(t):
        torch.testing.assert_close(memory[k], frames[k][1:], atol=1e-5, rtol=1e-5)


def test_fusion_encoder_without_temporal_layers_keeps_frames_apart():
    torch.manual_seed(16)
    enc = SpaceTimeFusionEncoder(D, 4, 2, 64, 0.0, temporal=False).eval()
    fv = torch.randn(1, 3, 4, D)
    valid = torch.ones(1, 2, 2, dtype=torch.bool)
    text, tmask = torch.randn(1, 2, D), torch.ones(1, 2, dtype=torch.bool)
    _, _, _, cls = enc(fv, valid, text, tmask)
    changed = fv.clone()
    changed[0, 1] += 1.0
    _, _, _, cls2 = enc(changed, valid, text, tmask)
    torch.testing.assert_close(cls[:, [0, 2]], cls2[:, [0, 2]])
    assert (cls[:, 1] - cls2[:, 1]).abs().max() > 1e-4


# ----------------------------------------------------------------------------- eq. (2)
def test_eq2_temporal_queries():
    torch.manual_seed(4)
    dec = TemporalDecoder(D, 4, 1, 64, 0.0)
    cls = torch.randn(2, 5, D)
    q = dec.queries(cls)
    th = dec.theta_t.layers
    for bi in range(2):
        for i in range(5):
            hidden = torch.relu(th[0].weight @ cls[bi, i] + th[0].bias)
            theta = th[1].weight @ hidden + th[1].bias
            pos = torch.tensor([pe(i, k) for k in range(D)])
            want = dec.w.weight @ (theta + pos) + dec.w.bias
            torch.testing.assert_close(q[bi, i], want, atol=1e-5, rtol=1e-5)


def test_intra_frame_cross_attention_reads_only_its_frame():
    """One layer: self-attention runs before the cross-attention, so frame j's memory reaches
    only query j (temporal and spatial decoders)."""
    torch.manual_seed(5)
    b, t, m = 1, 4, 6
    cls = torch.randn(b, t, D)
    memory = torch.randn(b * t, m, D)
    pos = torch.randn(b * t, m, D)
    pad = torch.zeros(b * t, m, dtype=torch.bool)
    changed = memory.clone()
    changed[2] += 1.0
    tdec = TemporalDecoder(D, 4, 1, 64, 0.0)
    s0, e0, _ = tdec(cls, memory, pos, pad, 4)
    s1, e1, _ = tdec(cls, changed, pos, pad, 4)
    sdec = SpatialDecoder(D, 4, 1, 64, 0.0)
    b0 = sdec(cls, cls, memory, pos, pad)[0][-1]
    b1 = sdec(cls, cls, changed, pos, pad)[0][-1]
    for a, c in ((s0, s1), (e0, e1), (b0, b1)):
        others = [0, 1, 3]
        torch.testing.assert_close(a[:, others], c[:, others])
        assert (a[:, 2] - c[:, 2]).abs().max() > 1e-4


def test_frame_span_brute_force():
    torch.manual_seed(6)
    start, end = torch.randn(3, 7), torch.randn(3, 7)
    s, e, score = frame_span(start, end)
    for bi in range(3):
        ps = [math.exp(v) for v in start[bi].tolist()]
        pe_ = [math.exp(v) for v in end[bi].tolist()]
        ps = [p / sum(ps) for p in ps]
        pe_ = [p / sum(pe_) for p in pe_]
        best = max((ps[i] * pe_[j], i, j) for i in range(7) for j in range(i + 1, 7))
        assert (int(s[bi]), int(e[bi])) == (best[1], best[2] + 1)
        assert float(score[bi]) == pytest.approx(best[0], rel=1e-5)


def test_frame_span_single_frame_and_mask():
    s, e, _ = frame_span(torch.zeros(1, 1), torch.zeros(1, 1))
    assert (int(s), int(e)) == (0, 1)
    start = torch.tensor([[0.0, 0.0, 0.0, 9.0]])
    end = torch.tensor([[0.0, 0.0, 0.0, 9.0]])
    mask = torch.tensor([[True, True, True, False]])
    s, e, _ = frame_span(start, end, mask)
    assert int(e) <= 3 and int(s) < int(e)  # frame 3 is masked out despite its high logits


# ----------------------------------------------------------------------------- eq. (3)-(5)
def test_eq3_event_labels():
    start, end = torch.tensor([0, 2, 5]), torch.tensor([3, 3, 6])
    labels = event_labels(start, end, 6)
    for bi in range(3):
        for i in range(6):
            assert int(labels[bi, i]) == int(start[bi] <= i < end[bi])


def test_eq4_event_embedding():
    torch.manual_seed(7)
    emb = EventEmbedding(D)
    labels = torch.tensor([[0, 1, 1, 0, 1]])
    out = emb(labels)
    for i in range(5):
        a = int(labels[0, i])
        want = emb.embed.weight[a].clone()
        if a:
            want = want + torch.tensor([pe(i, k) for k in range(D)])
        torch.testing.assert_close(out[0, i], want, atol=1e-6, rtol=1e-6)


def test_eq5_anchor_sine():
    anchors = torch.tensor([[0.3, 0.6, 0.2, 0.9]])
    out = anchor_sine(anchors, D)
    assert out.shape == (1, 2 * D)
    half = D // 2
    for block, coord in enumerate((1, 0, 2, 3)):  # cy, cx, w, h
        v = float(anchors[0, coord]) * 2 * math.pi
        for k in range(half):
            angle = v / 10000 ** (2 * (k // 2) / half)
            want = math.sin(angle) if k % 2 == 0 else math.cos(angle)
            assert float(out[0, block * half + k]) == pytest.approx(want, abs=1e-5)


def test_eq5_initial_anchors():
    torch.manual_seed(8)
    dec = SpatialDecoder(D, 4, 1, 64, 0.0)
    cls = torch.randn(1, 3, D)
    got = dec.initial_anchors(cls)
    th = dec.theta_s.layers
    for i in range(3):
        z = th[1].weight @ torch.relu(th[0].weight @ cls[0, i] + th[0].bias) + th[1].bias
        torch.testing.assert_close(got[0, i], 1 / (1 + torch.exp(-z)), atol=1e-6, rtol=1e-6)


def test_concat_cross_attention_per_head():
    torch.manual_seed(9)
    att = ConcatCrossAttention(D, 4, 0.0)
    x, p = torch.randn(2, 1, D), torch.randn(2, 1, D)
    m, r = torch.randn(2, 5, D), torch.randn(2, 5, D)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    out, weights = att(x, p, m, r, pad)
    dh = D // 4
    for n in range(2):
        qc = att.q_content.weight @ x[n, 0] + att.q_content.bias
        qp = att.q_pos.weight @ p[n, 0] + att.q_pos.bias
        heads = []
        wsum = torch.zeros(5)
        for h in range(4):
            sl = slice(h * dh, (h + 1) * dh)
            q = torch.cat((qc[sl], qp[sl]))
            logits = []
            for j in range(5):
                kc = att.k_content.weight @ m[n, j] + att.k_content.bias
                kp = att.k_pos.weight @ r[n, j] + att.k_pos.bias
                k = torch.cat((kc[sl], kp[sl]))
                logits.append(
                    float((q @ k).detach()) / math.sqrt(2 * dh) if not pad[n, j] else -math.inf
                )
            a = torch.tensor(logits).softmax(0)
            wsum += a / 4
            v = torch.stack([(att.v.weight @ m[n, j] + att.v.bias)[sl] for j in range(5)])
            heads.append(a @ v)
        want = att.out.weight @ torch.cat(heads) + att.out.bias
        torch.testing.assert_close(out[n, 0], want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(weights[n, 0], wsum, atol=1e-6, rtol=1e-6)


def test_anchor_update_in_logit_space():
    """Layer 1's boxes: ``sigmoid(logit(initial anchor) + delta)`` with delta in (-inf, inf):
    boxes stay in (0, 1) and layer 2 starts from layer 1's boxes."""
    torch.manual_seed(10)
    dec = SpatialDecoder(D, 4, 2, 64, 0.0)
    cls = torch.randn(1, 3, D)
    mem, pos = torch.randn(3, 4, D), torch.randn(3, 4, D)
    boxes, _, _ = dec(cls, cls, mem, pos, None)
    assert boxes.shape == (2, 1, 3, 4)
    assert ((boxes > 0) & (boxes < 1)).all()
    # A zero delta head leaves every layer's box at the initial anchor.
    for layer in dec.box_delta.layers:
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    boxes, _, _ = dec(cls, cls, mem, pos, None)
    init = dec.initial_anchors(cls)
    torch.testing.assert_close(boxes[0], init, atol=1e-4, rtol=0)
    torch.testing.assert_close(boxes[1], init, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- the model
def test_outputs_and_shapes():
    torch.manual_seed(11)
    model = build_costa(tiny_config()).eval()
    out = model(tiny_batch())
    assert out["pred_boxes"].shape == (2, 6, 4)
    assert out["layer_boxes"].shape == (2, 2, 6, 4)
    for key in ("start_logits", "end_logits", "enc_attendance", "dec_attendance"):
        assert out[key].shape == (2, 6)
    assert out["spatial_attention"].shape == (2, 6, 3, 4)
    start, end, _ = predict_span(out)
    assert ((0 <= start) & (start < end) & (end <= 6)).all()
    # Eval: the event part is the predicted span, whatever frame_in_tube says.
    want = event_labels(start, end, 6)
    assert torch.equal(out["event_labels"], want)


def test_event_part_ground_truth_ratio():
    torch.manual_seed(12)
    batch = tiny_batch()
    model = build_costa(tiny_config(gt_ratio=1.0)).train()
    assert torch.equal(model(batch)["event_labels"], batch["frame_in_tube"].long())
    model = build_costa(tiny_config(gt_ratio=0.0)).train()
    out = model(batch)
    start, end, _ = predict_span(out)
    assert torch.equal(out["event_labels"], event_labels(start, end, 6))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"entangled": False},
        {"video_fusion": "concat"},
        {"video_fusion": "2d", "temporal_encoder": False},
    ],
)
def test_every_parameter_gets_a_gradient(overrides):
    torch.manual_seed(13)
    model = build_costa(tiny_config(**overrides)).train()
    batch = tiny_batch()
    out = model(batch)
    targets = {
        "boxes": torch.rand(2, 6, 4) * 0.3 + 0.3,
        "box_mask": batch["frame_in_tube"],
        "frame_in_tube": batch["frame_in_tube"],
    }
    costa_total_loss(compute_costa_losses(out, targets)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_padding_does_not_leak():
    """Padded grid cells and text tokens change nothing on the real ones."""
    torch.manual_seed(14)
    model = build_costa(tiny_config()).eval()
    batch = tiny_batch()
    batch["image_mask"] = torch.ones(2, 3, 4, dtype=torch.bool)
    batch["image_mask"][1, 2:, :] = False
    batch["image_mask"][1, :, 3:] = False
    batch["text_mask"][1, 3:] = False
    other = {k: v.clone() for k, v in batch.items()}
    other["image"][1, :, :, 2:, :] = 50.0
    other["image"][1, :, :, :, 3:] = -50.0
    other["text"][1, 3:] = 7.0
    with torch.no_grad():
        out, again = model(batch), model(other)
    for key in ("pred_boxes", "start_logits", "end_logits", "enc_attendance"):
        torch.testing.assert_close(out[key], again[key], atol=1e-5, rtol=1e-5)
    assert float(out["spatial_attention"][1, :, 2:, :].abs().max()) == 0.0


def test_config_presets_and_errors():
    cfg = CoSTAConfig.from_preset("synthetic")
    assert cfg.d_model == COSTA_PRESETS["synthetic"]["d_model"]
    assert CoSTAConfig.from_dict(cfg.to_dict()) == cfg
    assert build_costa(tiny_config().to_dict()).cfg == tiny_config()
    with pytest.raises(InputError):
        CoSTAConfig.from_dict({"d_modle": 32})
    with pytest.raises(InputError):
        CoSTAConfig.from_preset("nope")
    with pytest.raises(InputError):
        CoSTAConfig.from_dict({"video_fusion": "max"})
    with pytest.raises(InputError):
        CoSTAConfig.from_dict({"gt_ratio": 1.5})


def test_feature_grids_of_different_sizes():
    """The motion grid (2x2) is resized onto a larger or smaller C5 grid."""
    model = build_costa(tiny_config()).eval()
    for h, w in ((1, 1), (5, 7)):
        out = model(tiny_batch(h=h, w=w))
        assert out["pred_boxes"].shape == (2, 6, 4)
        assert torch.isfinite(out["pred_boxes"]).all()


def test_stored_frame_span_merges_passes():
    """Two passes over 6 stored frames: probabilities averaged where both passes saw a frame."""
    torch.manual_seed(15)
    frame_idx = torch.tensor([[0, 2, 4], [1, 2, 5]])
    start, end = torch.randn(2, 3), torch.randn(2, 3)
    got = stored_frame_span(start, end, frame_idx, 7)  # stored frame 3 and 6 never seen
    ps, pe_ = [0.0] * 7, [0.0] * 7
    seen = [0] * 7
    for p in range(2):
        s_prob = softmax(start[p].tolist())
        e_prob = softmax(end[p].tolist())
        for k, f in enumerate(frame_idx[p].tolist()):
            ps[f] += s_prob[k]
            pe_[f] += e_prob[k]
            seen[f] += 1
    ps = [v / c if c else 0.0 for v, c in zip(ps, seen, strict=True)]
    pe_ = [v / c if c else 0.0 for v, c in zip(pe_, seen, strict=True)]
    zs, ze = sum(ps), sum(pe_)
    best = max(
        (ps[i] / zs * pe_[j] / ze, i, j)
        for i in range(7)
        for j in range(i + 1, 7)
        if seen[i] and seen[j]
    )
    assert got[:2] == (best[1], best[2] + 1)
    assert got[2] == pytest.approx(best[0], rel=1e-5)


def softmax(values: list[float]) -> list[float]:
    e = [math.exp(v) for v in values]
    return [v / sum(e) for v in e]
