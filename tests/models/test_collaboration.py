"""Collaboration blocks: eq. (2) with a hand-built A, the alignments, d2s and the baselines."""

import math

import torch

from stvg.models.collaboration import (
    CollaborationBlock,
    DynamicToStatic,
    StaticToDynamic,
    SymmetricFusion,
    align_attention,
    clip_pool_weights,
    frame_to_clip_index,
    frames_to_clips,
)


def layer_norm(x, norm):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight.detach() + norm.bias.detach()


def attention(mha, q, k, v):
    """Multi-head softmax(QK^T/sqrt(d_head))V with ``mha``'s weights: [Lq,d] x [Lk,d]."""
    d, h = mha.embed_dim, mha.num_heads
    dh = d // h
    w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
    qq, kk, vv = (
        q @ w[:d].T + b[:d],
        k @ w[d : 2 * d].T + b[d : 2 * d],
        v @ w[2 * d :].T + b[2 * d :],
    )
    heads = [
        torch.softmax(
            qq[:, i * dh : (i + 1) * dh] @ kk[:, i * dh : (i + 1) * dh].T / math.sqrt(dh), -1
        )
        @ vv[:, i * dh : (i + 1) * dh]
        for i in range(h)
    ]
    return torch.cat(heads, 1) @ mha.out_proj.weight.detach().T + mha.out_proj.bias.detach()


def test_eq2_with_hand_built_attention():
    torch.manual_seed(0)
    block = StaticToDynamic(8).eval()
    fv = torch.randn(1, 2, 3, 8)  # [B, Td, S, d]
    attn = torch.tensor([[[0.0, 0.5, 0.25], [1.0, 0.0, 0.1]]])  # [B, Td, S]
    with torch.no_grad():
        got = block(fv, attn)
    w, b = block.fc.weight.detach(), block.fc.bias.detach()
    for t in range(2):
        for s in range(3):
            x = fv[0, t, s]
            want = layer_norm(x + attn[0, t, s] * (w @ x + b), block.norm)
            assert torch.allclose(got[0, t, s], want, atol=1e-5)
    # A = 0 leaves only the LayerNorm of F
    assert torch.allclose(got[0, 0, 0], layer_norm(fv[0, 0, 0], block.norm), atol=1e-5)


def test_temporal_mean_pooling_and_replication():
    x = torch.arange(4.0).view(1, 4, 1)  # frames 0..3
    assert frames_to_clips(x, 2).flatten().tolist() == [0.5, 2.5]  # means of (0,1), (2,3)
    # Ts = 3 -> Td = 2 by time: frames at 1/6, 1/2, 5/6; clips [0, 1/2) and [1/2, 1)
    y = torch.tensor([[[0.0], [3.0], [6.0]]])
    assert frames_to_clips(y, 2).flatten().tolist() == [0.0, 4.5]
    # Ts = 2 -> Td = 4: frames at 1/4, 3/4 each hold one clip; clip [0, 1/4) is empty and takes
    # the frame nearest its centre 1/8 (frame 0); [1/2, 3/4) is empty, centre 5/8: frame 1
    z = torch.tensor([[[1.0], [5.0]]])
    assert frames_to_clips(z, 4).flatten().tolist() == [1.0, 1.0, 5.0, 5.0]
    # frame centres (t + .5) / 6 against clip boundaries c / 4
    assert frame_to_clip_index(6, 4).tolist() == [0, 1, 1, 2, 3, 3]
    assert frame_to_clip_index(4, 4).tolist() == [0, 1, 2, 3]


# A pass of 5 frames (native ids) over a segment [0, 48) of 6 clips of 8 frames: clips 1 and 4
# hold no frame; clip 2 holds two.
FRAME_IDS = [3, 20, 22, 30, 46]
SPANS = [[0, 8], [8, 16], [16, 24], [24, 32], [32, 40], [40, 48]]


def test_clip_pool_weights_by_time():
    got = clip_pool_weights(torch.tensor([FRAME_IDS]), torch.tensor([SPANS]))[0]
    want = torch.zeros(6, 5)
    want[0, 0] = 1.0  # frame 3
    want[1, 1] = 1.0  # empty, centre 12: frame 20 (8 away), not frame 3 (9 away)
    want[2, 1:3] = 0.5  # frames 20 and 22
    want[3, 3] = 1.0  # frame 30
    want[4, 3] = 1.0  # empty, centre 36: frame 30 (6 away) before 46 (10 away)
    want[5, 4] = 1.0  # frame 46
    assert torch.equal(got, want)
    # a tie goes to the earlier frame: empty clip [10, 14), centre 12, frames 9 and 15 both 3 away
    tie = clip_pool_weights(torch.tensor([[9, 15]]), torch.tensor([[[10, 14]]]))
    assert tie.tolist() == [[[1.0, 0.0]]]


def test_align_attention_pools_frames_into_clips_by_time():
    torch.manual_seed(0)
    attn = torch.rand(1, 5, 2, 2)  # a 2 x 2 grid aligned to a 2 x 2 dynamic grid: no resize
    pool = clip_pool_weights(torch.tensor([FRAME_IDS]), torch.tensor([SPANS]))
    got = align_attention(attn, clips=6, grid=(2, 2), pool=pool)[0].view(6, 2, 2)
    # direct: each clip the mean of the maps of its frames, or the nearest frame's map
    members = {0: [0], 1: [1], 2: [1, 2], 3: [3], 4: [3], 5: [4]}
    for c, frames in members.items():
        assert torch.allclose(got[c], attn[0, frames].mean(0), atol=1e-6), c
    # in the "w/o spatial" ablation the same clips average the spatial means
    flat = align_attention(attn, clips=6, grid=(1, 1), pool=pool)[0, :, 0]
    want = torch.stack([attn[0, f].mean() for f in [[0], [1], [1, 2], [3], [3], [4]]])
    assert torch.allclose(flat, want, atol=1e-6)


def test_align_attention_pads_to_the_clip_square_then_resizes_bilinearly():
    attn = torch.tensor([[[[0.0, 1.0]], [[2.0, 4.0]]]])  # [B=1, Ts=2, h=1, w=2]
    got = align_attention(attn, clips=1, grid=(4, 4))
    # A 1 x 2 frame grid is the top half of the clip's 2 x 2 square (padded at the bottom with
    # zeros), upsampled 2x, align_corners=False: src = (dst + .5) / 2 - .5 = -.25, .25, .75, 1.25,
    # clamped to [0, 1]; per-axis weights of the first cell row/column: 1, .75, .25, 0.
    up = torch.tensor([1.0, 0.75, 0.25, 0.0])  # weight of source index 0 at each target index

    def resize(square):  # bilinear 2 -> 4 along both axes
        m = torch.stack([up, 1 - up], dim=1)  # [4, 2]
        return m @ square @ m.T

    frame0 = resize(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    frame1 = resize(torch.tensor([[2.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(got[0, 0], ((frame0 + frame1) / 2).flatten())
    one = align_attention(attn, clips=2, grid=(1, 1))  # "w/o spatial": spatial mean
    assert one.flatten().tolist() == [0.5, 3.0]


def test_align_attention_uses_each_samples_valid_cells():
    attn = torch.arange(2 * 1 * 2 * 4, dtype=torch.float32).view(2, 1, 2, 4)
    valid = torch.zeros(2, 2, 4, dtype=torch.bool)
    valid[0] = True  # 2 x 4 frame grid -> 4 x 4 square: rows 2, 3 are padding
    valid[1, :2, :2] = True  # 2 x 2 frame grid (batch-padded to 2 x 4) -> 2 x 2 square
    got = align_attention(attn, clips=1, grid=(4, 4), valid=valid).view(2, 4, 4)
    want0 = torch.zeros(4, 4)
    want0[:2] = attn[0, 0]
    assert torch.equal(got[0], want0)  # no resize: the square is already the grid
    m = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])  # bilinear 2 -> 4
    assert torch.allclose(got[1], m @ attn[1, 0, :, :2] @ m.T)


def test_dynamic_to_static_matches_direct_computation():
    torch.manual_seed(1)
    block = DynamicToStatic(8, 2, 0.0).eval()
    b, ts, td, s, d = 1, 3, 2, 4, 8
    queries = torch.randn(b, ts, d)
    fv = torch.randn(b, td, s, d)
    index = torch.tensor([[0, 1, 1]])
    space_pos, frame_pos = torch.randn(s, d), torch.randn(ts, d)
    with torch.no_grad():
        got = block(queries, fv, index, space_pos, frame_pos)
    crossed = torch.stack(
        [
            layer_norm(
                queries[0, t]
                + attention(
                    block.cross_attn,
                    queries[0, t][None],
                    fv[0, index[0, t]] + space_pos,
                    fv[0, index[0, t]],
                )[0],
                block.norm_cross,
            )
            for t in range(ts)
        ]
    )
    q = crossed + frame_pos
    want = layer_norm(crossed + attention(block.mix_attn, q, q, crossed), block.norm_mix)
    assert torch.allclose(got[0], want, atol=1e-5)


def test_symmetric_baselines_match_their_formulas():
    torch.manual_seed(2)
    queries = torch.randn(1, 4, 8)
    fv = torch.randn(1, 2, 3, 8)
    index = frame_to_clip_index(4, 2)[None]  # [0, 0, 1, 1]
    to_static = torch.stack([fv[0, c].mean(0) for c in index[0].tolist()])  # [Ts, d]
    to_dynamic = torch.stack([queries[0, 0:2].mean(0), queries[0, 2:4].mean(0)])  # [Td, d]
    for mode in ("sum", "fc_sum", "concat_fc"):
        fusion = SymmetricFusion(mode, 8).eval()
        with torch.no_grad():
            new_q, new_f = fusion(queries, fv, index)
        for t in range(4):
            x, y = queries[0, t], to_static[t]
            if mode == "sum":
                want = layer_norm(x + y, fusion.norm_static)
            elif mode == "fc_sum":
                want = layer_norm(x + fusion.fc_static(y).detach(), fusion.norm_static)
            else:
                want = layer_norm(fusion.fc_static(torch.cat([x, y])).detach(), fusion.norm_static)
            assert torch.allclose(new_q[0, t], want, atol=1e-5), mode
        x, y = fv[0, 1, 2], to_dynamic[1]
        if mode == "sum":
            want = layer_norm(x + y, fusion.norm_dynamic)
        elif mode == "fc_sum":
            want = layer_norm(x + fusion.fc_dynamic(y).detach(), fusion.norm_dynamic)
        else:
            want = layer_norm(fusion.fc_dynamic(torch.cat([x, y])).detach(), fusion.norm_dynamic)
        assert torch.allclose(new_f[0, 1, 2], want, atol=1e-5), mode


def test_block_modes_touch_only_their_direction():
    torch.manual_seed(3)
    queries, fv = torch.randn(1, 4, 8), torch.randn(1, 2, 4, 8)
    attn = torch.rand(1, 4, 2, 2)
    args = ((2, 2), frame_to_clip_index(4, 2)[None], torch.randn(4, 8), torch.randn(4, 8))
    with torch.no_grad():
        q, f = CollaborationBlock("s2d", 8, 2, 0.0).eval()(queries, fv, attn, *args)
        assert torch.equal(q, queries) and not torch.allclose(f, fv)
        q, f = CollaborationBlock("d2s", 8, 2, 0.0).eval()(queries, fv, attn, *args)
        assert torch.equal(f, fv) and not torch.allclose(q, queries)
