"""CG-STVG: the encoder input (eqs. 1-2), the decoding blocks (eqs. 4-6), ICG/ICR (eqs. 7-12)
against direct computations, gradients, padding, oracle context and span inference."""

import math

import pytest
import torch
import torch.nn.functional as F

from stvg.errors import InputError
from stvg.models.cgstvg import (
    CGSTVG,
    CGSTVGConfig,
    build_cgstvg,
    frame_span,
    joint_span_map,
    stored_frame_span,
)
from stvg.models.cgstvg_context import (
    InstanceContext,
    hard_filter,
    motion_scales,
    replicate_padding,
    roi_context,
)
from stvg.models.cgstvg_losses import cgstvg_losses, cgstvg_total_loss
from stvg.models.heads import INVALID_LOGIT, best_span
from stvg.models.position import sine_position_2d

B, TS, TD, H, W, H2, W2, L = 2, 6, 3, 3, 4, 2, 2, 5


def tiny(**overrides) -> CGSTVGConfig:
    values = dict(
        d_model=32,
        n_heads=4,
        n_layers=2,
        n_encoder_layers=1,
        dim_feedforward=48,
        dropout=0.0,
        image_channels=8,
        text_channels=12,
        motion_channels=10,
    )
    values.update(overrides)
    return CGSTVGConfig(**values)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(B, TS, 8, H, W, generator=g),
        "text": torch.randn(B, L, 12, generator=g),
        "text_mask": torch.tensor([[True] * L, [True] * 3 + [False] * 2]),
        "motion": torch.randn(B, TD, 10, H2, W2, generator=g),
    }


def targets() -> dict[str, torch.Tensor]:
    in_tube = torch.zeros(B, TS, dtype=torch.bool)
    in_tube[0, 1:4] = True
    in_tube[1, 2:6] = True
    boxes = torch.tensor([0.5, 0.5, 0.3, 0.4]).expand(B, TS, 4).clone()
    boxes[1, :, 0] = 0.3
    return {"boxes": boxes, "box_mask": in_tube.clone(), "frame_in_tube": in_tube}


def model(seed: int = 0, **overrides) -> CGSTVG:
    torch.manual_seed(seed)
    return build_cgstvg(tiny(**overrides)).eval()


# ----------------------------------------------------------------------------- shapes, config
def test_output_shapes_and_ranges():
    out = model()(batch())
    assert out["pred_boxes"].shape == (B, TS, 4)
    assert out["score_map"].shape == (B, TS, TS) and out["map_mask"].shape == (TS, TS)
    for key in ("stage_start", "stage_end", "temporal_logits", "spatial_conf", "context_keep"):
        assert out[key].shape == (B, 2, TS), key
    assert out["stage_boxes"].shape == (B, 2, TS, 4)
    assert torch.equal(out["pred_boxes"], out["stage_boxes"][:, -1])
    assert 0 <= out["pred_boxes"].min() and out["pred_boxes"].max() <= 1
    assert 0 < out["spatial_conf"].min() and out["spatial_conf"].max() < 1


def test_config_presets_and_validation():
    cfg = CGSTVGConfig.from_preset("hcstvg-v1")
    assert (cfg.n_layers, cfg.n_encoder_layers, cfg.d_model, cfg.n_heads) == (6, 6, 256, 8)
    assert (cfg.theta_t, cfg.theta_s) == (0.7, 0.8)
    assert CGSTVGConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"theta_s": 1.0}, {"context_selection": "gt"}, {"d_model": 30}, {"k": 1}):
        with pytest.raises(InputError) as err:
            CGSTVGConfig.from_dict(bad)
        assert err.value.field == next(iter(bad))
    with pytest.raises(InputError):
        CGSTVGConfig.from_preset("kinetics")
    assert build_cgstvg({**tiny().to_dict(), "n_layers": 3}).cfg.n_layers == 3


# ----------------------------------------------------------------------------- eqs. (1)-(2)
def test_encoder_input_is_the_concatenation_with_position_and_type():
    net = model()
    net.encoder = torch.nn.ModuleList()  # no SAEncoder layer: encode returns X' (eq. 2)
    inputs = batch()
    valid = torch.ones(B, H, W, dtype=torch.bool)
    valid[1, :, 3] = False
    clip_of = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2]])
    with torch.no_grad():
        x, pad = net.encode(
            inputs["image"], valid, inputs["text"], inputs["text_mask"], inputs["motion"], clip_of
        )
        d = net.cfg.d_model
        pos_a = sine_position_2d(valid, d)
        pos_m = sine_position_2d(torch.ones(1, H2, W2, dtype=torch.bool), d)[0]
        for b in range(B):
            for t in range(TS):
                row = x[b * TS + t]
                n = 0
                for i in range(H):
                    for j in range(W):
                        v = inputs["image"][b, t, :, i, j]
                        want = net.image_proj(v) + pos_a[b, i, j] + net.type_embed[0]
                        assert torch.allclose(row[n], want, atol=1e-5)
                        assert bool(pad[b * TS + t, n]) == (not valid[b, i, j])
                        n += 1
                for i in range(H2):
                    for j in range(W2):
                        v = inputs["motion"][b, clip_of[b, t], :, i, j]
                        want = net.motion_proj(v) + pos_m[i, j] + net.type_embed[1]
                        assert torch.allclose(row[n], want, atol=1e-5)
                        n += 1
                for tok in range(L):
                    want = net.text_proj(inputs["text"][b, tok]) + net.type_embed[2]
                    assert torch.allclose(row[n], want, atol=1e-5)
                    assert bool(pad[b * TS + t, n]) == (not inputs["text_mask"][b, tok])
                    n += 1
                assert n == row.shape[0]


# ----------------------------------------------------------------------------- eqs. (4)-(6)
def attend(mha: torch.nn.MultiheadAttention, q, k, v=None) -> torch.Tensor:
    """Multi-head attention of queries ``q`` on keys ``k`` and values ``v`` (default ``k``)."""
    v = k if v is None else v
    d, h = mha.embed_dim, mha.num_heads
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    qp = (q @ w[:d].T + bias[:d]).view(-1, h, d // h).transpose(0, 1)
    kp = (k @ w[d : 2 * d].T + bias[d : 2 * d]).view(-1, h, d // h).transpose(0, 1)
    vp = (v @ w[2 * d :].T + bias[2 * d :]).view(-1, h, d // h).transpose(0, 1)
    att = ((qp @ kp.transpose(1, 2)) / math.sqrt(d // h)).softmax(-1)
    out = (att @ vp).transpose(0, 1).reshape(-1, d)
    return mha.out_proj(out)


def test_spatial_block_matches_eq4_and_eq5_written_out():
    net = model()
    first, second = net.spatial_blocks
    assert first.context_attn is None and second.context_attn is not None  # eq. (5) vs (4)
    g = torch.Generator().manual_seed(3)
    d = net.cfg.d_model
    queries = torch.randn(B, TS, d, generator=g)
    pos = torch.randn(TS, d, generator=g)
    memory = torch.randn(B * TS, 7, d, generator=g)
    pad = torch.zeros(B * TS, 7, dtype=torch.bool)
    pad[:, 5:] = True
    context = torch.randn(B, TS, d, generator=g)
    keep = torch.tensor([[True, False, True, False, False, False], [False] * TS])
    with torch.no_grad():
        got, _ = second(queries, pos, memory, pad, context, keep)
        for b in range(B):
            q = queries[b]
            q = second.norm_self(q + attend(second.self_attn, q + pos, q + pos, q))
            if keep[b].any():  # CA(., C_{k-1}) over the kept context tokens only
                ctx = context[b][keep[b]]
                q = second.norm_context(q + attend(second.context_attn, q + pos, ctx))
            rows = []
            for t in range(TS):  # each frame's query reads its own frame's tokens
                mem = memory[b * TS + t][~pad[b * TS + t]]
                rows.append(attend(second.cross_attn, (q[t] + pos[t])[None], mem)[0])
            q = second.norm_cross(q + torch.stack(rows))
            want = second.ffn(q)
            assert torch.allclose(got[b], want, atol=1e-5), b
        # eq. (5): without context the block is SA -> CA(X~) -> FFN, like SDB_k with no token
        none, _ = second(queries, pos, memory, pad, context, torch.zeros(B, TS, dtype=torch.bool))
        assert torch.allclose(none[1], got[1], atol=1e-6)


def test_temporal_block_matches_eq6_written_out():
    net = model()
    block = net.temporal_blocks[0]
    g = torch.Generator().manual_seed(4)
    d = net.cfg.d_model
    queries, pos = torch.randn(B, TS, d, generator=g), torch.randn(TS, d, generator=g)
    memory = torch.randn(B * TS, 5, d, generator=g)
    pad = torch.zeros(B * TS, 5, dtype=torch.bool)
    with torch.no_grad():
        got = block(queries, pos, memory, pad)
        for b in range(B):
            p = queries[b]
            p = block.norm_self(p + attend(block.self_attn, p + pos, p + pos, p))
            ca = torch.stack(
                [
                    attend(block.cross_attn, (p[t] + pos[t])[None], memory[b * TS + t])[0]
                    for t in range(TS)
                ]
            )
            want = block.ffn(block.norm_cross(p + ca))
            assert torch.allclose(got[b], want, atol=1e-5)


# ----------------------------------------------------------------------------- eq. (8)
def bilinear(fmap: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """RoIAlign's sample of ``fmap`` [C, h, w] at continuous cell coordinates (centres at i)."""
    c, h, w = fmap.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(c)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = min(int(math.floor(y)), h - 1), min(int(math.floor(x)), w - 1)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    if y0 >= h - 1:
        y = float(y0)
    if x0 >= w - 1:
        x = float(x0)
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * fmap[:, y0, x0]
        + (1 - ly) * lx * fmap[:, y0, x1]
        + ly * (1 - lx) * fmap[:, y1, x0]
        + ly * lx * fmap[:, y1, x1]
    )


def roi_direct(fmap, box_cxcywh, sx, sy, p, s):
    """The mean over p x p bins of s x s bilinear samples in each bin (aligned: -0.5 shift)."""
    cx, cy, bw, bh = box_cxcywh
    x1, x2 = min(max(cx - bw / 2, 0), 1) * sx - 0.5, min(max(cx + bw / 2, 0), 1) * sx - 0.5
    y1, y2 = min(max(cy - bh / 2, 0), 1) * sy - 0.5, min(max(cy + bh / 2, 0), 1) * sy - 0.5
    bin_w, bin_h = (x2 - x1) / p, (y2 - y1) / p
    total = torch.zeros(fmap.shape[0])
    for ph in range(p):
        for pw in range(p):
            acc = torch.zeros(fmap.shape[0])
            for iy in range(s):
                for ix in range(s):
                    y = y1 + ph * bin_h + (iy + 0.5) * bin_h / s
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / s
                    acc += bilinear(fmap, y, x)
            total += acc / (s * s)
    return total / (p * p)


def test_roi_context_is_roialign_written_out():
    g = torch.Generator().manual_seed(5)
    maps = torch.randn(2, 3, 4, 5, 6, generator=g)
    boxes = torch.tensor(
        [
            [[0.5, 0.5, 0.4, 0.6], [0.2, 0.3, 0.3, 0.3], [0.9, 0.9, 0.4, 0.4]],
            [[0.5, 0.5, 1.0, 1.0], [0.6, 0.4, 0.05, 0.1], [0.1, 0.8, 0.3, 0.5]],
        ]
    )
    sx, sy = torch.tensor([6.0, 4.0]), torch.tensor([5.0, 3.0])  # 2nd sample: a 3 x 4 valid part
    got = roi_context(maps, boxes, sx, sy, output_size=2, sampling_ratio=2)
    for b in range(2):
        for t in range(3):
            want = roi_direct(maps[b, t], boxes[b, t].tolist(), sx[b].item(), sy[b].item(), 2, 2)
            assert torch.allclose(got[b, t], want, atol=1e-5), (b, t)


def test_padded_cells_sample_what_the_unpadded_map_samples():
    g = torch.Generator().manual_seed(6)
    small = torch.randn(1, 2, 4, 3, 4, generator=g)  # a 3 x 4 frame grid
    padded = torch.randn(1, 2, 4, 5, 6, generator=g) * 100  # garbage in the padding
    padded[..., :3, :4] = small
    valid = torch.zeros(1, 5, 6, dtype=torch.bool)
    valid[0, :3, :4] = True
    filled = replicate_padding(padded, valid)
    assert torch.equal(filled[..., :3, :4], small)
    assert torch.equal(filled[..., 4, 5], small[..., 2, 3])  # the corner reads the last cell
    boxes = torch.tensor([[[0.8, 0.8, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]]])
    a = roi_context(filled, boxes, torch.tensor([4.0]), torch.tensor([3.0]), 2, 2)
    b = roi_context(small, boxes, torch.tensor([4.0]), torch.tensor([3.0]), 2, 2)
    assert torch.allclose(a, b, atol=1e-6)


def test_motion_scales_follow_the_square_padding_of_clips():
    valid = torch.zeros(2, 4, 6, dtype=torch.bool)
    valid[0, :3, :6] = True  # landscape 3 x 6: the square's side is 6
    valid[1, :4, :2] = True  # portrait 4 x 2: side 4
    sx, sy = motion_scales(valid, (8, 8))
    assert sx.tolist() == [8.0, 4.0] and sy.tolist() == [4.0, 8.0]


# ----------------------------------------------------------------------------- eqs. (9)-(12)
def mlp_direct(mlp, x):
    for i, layer in enumerate(mlp.layers):
        x = x @ layer.weight.T + layer.bias
        if i < len(mlp.layers) - 1:
            x = x.clamp(min=0)
    return x


def test_confidences_filters_and_context_written_out():
    torch.manual_seed(7)
    d = 16
    icr = InstanceContext(d, roi_size=1, sampling_ratio=2)
    p_k = torch.randn(2, 5, d)
    app, mot = torch.randn(2, 5, d, 3, 4), torch.randn(2, 5, d, 4, 4)
    regions = torch.rand(2, 5, 4) * 0.5 + 0.25
    valid = torch.ones(2, 3, 4, dtype=torch.bool)
    with torch.no_grad():
        out = icr(p_k, app, mot, regions, valid, theta_t=0.45, theta_s=0.5)
        c_a, c_m = icr.generate(app, mot, regions, valid)
        for b in range(2):
            for t in range(5):
                s_t = torch.sigmoid(mlp_direct(icr.temporal_mlp, p_k[b, t]))[0]  # eq. (9)
                assert torch.allclose(out.temporal_logits[b, t].sigmoid(), s_t, atol=1e-6)
                s_s = (  # eq. (11)
                    torch.sigmoid(mlp_direct(icr.appearance_mlp, c_a[b, t]))[0]
                    + torch.sigmoid(mlp_direct(icr.motion_mlp, c_m[b, t]))[0]
                ) / 2
                assert torch.allclose(out.spatial_conf[b, t], s_s, atol=1e-6)
                assert bool(out.keep[b, t]) == bool(s_t > 0.45 and s_s > 0.5)  # eqs. (10), (12)
                cat = torch.cat((c_a[b, t], c_m[b, t]))
                assert torch.allclose(out.tokens[b, t], mlp_direct(icr.fuse, cat), atol=1e-5)
    assert out.keep.any() and not out.keep.all()  # the thresholds did cut something here


def test_hard_filter_passes_only_scores_above_both_thresholds():
    # thresholds and scores exact in float32, so "greater than" is tested at equality
    st = torch.tensor([[0.875, 0.75, 0.8125, 0.25, 0.9375]])
    ss = torch.tensor([[0.875, 0.875, 0.5, 0.875, 0.5625]])
    want = [[a > 0.75 and b > 0.5 for a, b in zip(st[0].tolist(), ss[0].tolist(), strict=True)]]
    assert hard_filter(st, ss, 0.75, 0.5).tolist() == want == [[True, False, False, False, True]]


def test_thresholds_decide_what_the_next_stage_reads():
    inputs = batch()
    with torch.no_grad():
        everything = model(theta_t=0.0, theta_s=0.0)(inputs)
        nothing = model(theta_t=0.999, theta_s=0.999)(inputs)
    assert everything["context_keep"].all() and not nothing["context_keep"].any()
    # the first stage is identical, the second one read context in one run and none in the other
    assert torch.allclose(everything["stage_boxes"][:, 0], nothing["stage_boxes"][:, 0])
    assert not torch.allclose(everything["stage_boxes"][:, 1], nothing["stage_boxes"][:, 1])


def test_oracle_context_keeps_gt_frames_whose_box_overlaps():
    net = model(context_selection="oracle", theta_s=0.0).train()
    inputs = {**batch(), **targets()}
    out = net(inputs)
    from stvg.evaluate.boxes import box_cxcywh_to_xyxy, generalized_box_iou

    for b in range(B):
        for t in range(TS):
            for k in range(2):
                pred = box_cxcywh_to_xyxy(out["stage_boxes"][b, k, t][None])
                gt = box_cxcywh_to_xyxy(inputs["boxes"][b, t][None])
                giou = generalized_box_iou(pred, gt)[0, 0].item()
                want = bool(inputs["box_mask"][b, t]) and giou > 0.0
                assert bool(out["context_keep"][b, k, t]) == want
    with pytest.raises(InputError):
        net(batch())
    net.eval()  # inference: the filters choose
    assert net(batch())["context_keep"].shape == (B, 2, TS)


# ----------------------------------------------------------------------------- training
def test_every_parameter_gets_a_gradient():
    net = model(theta_t=0.0, theta_s=0.0).train()  # every frame passes, so C_k is read
    out = net({**batch(), "image_mask": torch.ones(B, H, W, dtype=torch.bool)})
    cgstvg_total_loss(cgstvg_losses(out, targets())).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing


def test_padded_cells_and_tokens_do_not_change_a_sample():
    net = model(theta_t=0.0, theta_s=0.0)
    inputs = batch()
    inputs["image_mask"] = torch.ones(B, H, W, dtype=torch.bool)
    inputs["image_mask"][1, :, 3] = False  # sample 1 is a 3 x 3 frame padded to 3 x 4
    other = {**inputs, "image": inputs["image"].clone()}
    other["image"][1, :, :, :, 3] = 50.0
    other["text"] = inputs["text"].clone()
    other["text"][1, 3:] = -20.0  # sample 1's padded tokens
    alone = {
        "image": inputs["image"][1:, :, :, :, :3],
        "text": inputs["text"][1:],
        "text_mask": inputs["text_mask"][1:],
        "motion": inputs["motion"][1:],
    }
    with torch.no_grad():
        a, b, c = net(inputs), net(other), net(alone)
    for key in ("pred_boxes", "score_map", "spatial_conf", "temporal_logits"):
        assert torch.allclose(a[key][1], b[key][1], atol=1e-5), key
        assert torch.allclose(a[key][1], c[key][0], atol=1e-4), key


# ----------------------------------------------------------------------------- inference
def test_frame_span_is_the_best_joint_pair():
    g = torch.Generator().manual_seed(8)
    start, end = torch.randn(4, 7, generator=g) * 3, torch.randn(4, 7, generator=g) * 3
    for min_frames in (1, 2, 3):
        s, e, score = frame_span(start, end, min_frames)
        for b in range(4):
            ps, pe = F.softmax(start[b], 0), F.softmax(end[b], 0)
            best = max(
                (ps[i].item() * pe[j].item(), i, j)
                for i in range(7)
                for j in range(7)
                if j - i + 1 >= min_frames
            )
            assert (s[b].item(), e[b].item()) == (best[1], best[2] + 1)
            assert math.isclose(score[b].exp().item(), best[0], rel_tol=1e-5)
    joint, mask = joint_span_map(start, end)
    assert torch.equal(mask, torch.ones(7, 7, dtype=torch.bool).triu())
    assert torch.all(joint[:, ~mask] == INVALID_LOGIT)
    s2, e2, _ = best_span(joint, mask)  # the CSDVL argmax gives the same span
    assert torch.equal(s2, frame_span(start, end)[0]) and torch.equal(e2, frame_span(start, end)[1])


def test_stored_frame_span_joins_the_passes():
    g = torch.Generator().manual_seed(9)
    stored = 11
    passes = [torch.tensor([0, 3, 6, 9]), torch.tensor([1, 4, 7, 10]), torch.tensor([2, 5, 8, 8])]
    starts = [torch.randn(4, generator=g) * 2 for _ in passes]
    ends = [torch.randn(4, generator=g) * 2 for _ in passes]
    # each stored frame's probabilities, from the pass that ran it (frame 8 once, first position)
    ps, pe = [0.0] * stored, [0.0] * stored
    for frames, s, e in zip(passes, starts, ends, strict=True):
        s_prob, e_prob = F.softmax(s, 0).tolist(), F.softmax(e, 0).tolist()
        done = set()
        for k, f in enumerate(frames.tolist()):
            if f not in done:
                ps[f], pe[f] = s_prob[k], e_prob[k]
                done.add(f)
    for min_frames in (1, 4):
        best = max(
            (ps[i] * pe[j], i, j)
            for i in range(stored)
            for j in range(stored)
            if j - i + 1 >= min_frames
        )
        got = stored_frame_span(passes, starts, ends, stored, min_frames)
        assert got[:2] == (best[1], best[2] + 1)
        assert math.isclose(math.exp(got[2]), best[0] / (sum(ps) * sum(pe)), rel_tol=1e-5)
    one = stored_frame_span([torch.arange(4)], starts[:1], ends[:1], 4)
    s, e, _ = frame_span(starts[0][None], ends[0][None])
    assert one[:2] == (int(s), int(e))


@pytest.mark.parametrize("refinement", ["st", "t", "s", "none"])
def test_refinement_levels_of_table4(refinement):
    st = torch.tensor([[0.875, 0.875, 0.25, 0.25]])
    ss = torch.tensor([[0.875, 0.25, 0.875, 0.25]])
    want = {
        "st": [True, False, False, False],
        "t": [True, True, False, False],
        "s": [True, False, True, False],
        "none": [True, True, True, True],
    }[refinement]
    assert hard_filter(st, ss, 0.75, 0.5, refinement)[0].tolist() == want


def test_baseline_without_instance_context():
    net = model(instance_context=False, theta_t=0.0, theta_s=0.0).train()
    assert all(block.context_attn is None for block in net.spatial_blocks)
    assert net.context.fuse is None
    out = net(batch())
    cgstvg_total_loss(cgstvg_losses(out, targets())).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing
    with pytest.raises(InputError) as err:
        CGSTVGConfig.from_dict({"refinement": "ts"})
    assert err.value.field == "refinement"


def test_encoder_is_the_self_attention_stack_on_x_prime():
    """Eq. (3): X~ = SAEncoder(X'), every token attending to the frame's unpadded tokens."""
    net = model(n_encoder_layers=2)
    inputs = batch()
    valid = torch.ones(B, H, W, dtype=torch.bool)
    clip_of = torch.tensor([[0, 0, 1, 1, 2, 2]] * B)
    args = (inputs["image"], valid, inputs["text"], inputs["text_mask"], inputs["motion"], clip_of)
    with torch.no_grad():
        encoded, pad = net.encode(*args)
        layers, net.encoder = net.encoder, torch.nn.ModuleList()
        x_prime, _ = net.encode(*args)
        for f in range(B * TS):  # one frame at a time, padded tokens removed
            x = x_prime[f][~pad[f]]
            for layer in layers:
                x = layer.norm(x + attend(layer.self_attn, x, x, x))
                x = layer.ffn(x)
            assert torch.allclose(encoded[f][~pad[f]], x, atol=1e-5), f


def test_regions_are_the_stage_boxes(monkeypatch):
    """Eq. (7): ICG pools the features under each stage's own (detached) box prediction."""
    net = model(theta_t=0.0, theta_s=0.0)
    seen = []
    original = net.context.generate

    def spy(appearance, motion, regions, valid):
        seen.append(regions)
        return original(appearance, motion, regions, valid)

    monkeypatch.setattr(net.context, "generate", spy)
    with torch.no_grad():
        out = net(batch())
    assert len(seen) == 2
    for k, regions in enumerate(seen):
        assert torch.equal(regions, out["stage_boxes"][:, k]) and not regions.requires_grad
