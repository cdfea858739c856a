"""The look-alike options of CSDVL: ``d2s_attention`` (maps, prior), ``loss_d2s_att`` and
``box_reference="attention_peak"``, each against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch

from stvg.config import SettingError
from stvg.errors import InputError
from stvg.models.box_reference import attention_centre, peak_window
from stvg.models.collaboration import DynamicToStatic, frame_features, spread_attention
from stvg.models.csdvl import CSDVLConfig, build_model
from stvg.models.static_stream import DecoderLayer
from stvg.train.losses import compute_losses, d2s_attention_loss, square_box_shares


def test_square_box_shares_by_hand():
    # A 4 x 2 px frame padded to a 4 x 4 square; a 2 x 2 grid has cells of 2 x 2 px.
    size = torch.tensor([[4.0, 2.0]])
    # pixels x 0..2, y 0..2: all of cell (0, 0); normalized by (W, H) = (4, 2)
    box = torch.tensor([[[0.25, 0.5, 0.5, 1.0]]])
    assert torch.allclose(square_box_shares(box, size, (2, 2)), torch.tensor([[1.0, 0], [0, 0]]))
    # pixels x 1..3, y 0..1: half in (0, 0), half in (0, 1)
    box = torch.tensor([[[0.5, 0.25, 0.5, 0.5]]])
    assert torch.allclose(square_box_shares(box, size, (2, 2)), torch.tensor([[0.5, 0.5], [0, 0]]))


def test_d2s_attention_loss_by_hand():
    size = torch.tensor([[4.0, 2.0]])
    boxes = torch.tensor([[[0.5, 0.25, 0.5, 0.5], [0.25, 0.5, 0.5, 1.0]]])  # shares as above
    mask = torch.tensor([[True, False]])  # frame 1 is no GT frame
    p0 = torch.tensor([0.4, 0.1, 0.25, 0.25])
    p1 = torch.tensor([0.7, 0.1, 0.1, 0.1])
    one_block = torch.stack([p0, p1])[None, None]  # [B=1, N=1, Ts=2, S=4]
    expect = -(0.5 * math.log(0.4) + 0.5 * math.log(0.1))
    got = d2s_attention_loss(one_block, boxes, mask, size, (2, 2))
    assert got.item() == pytest.approx(expect, rel=1e-6)
    # two blocks: the mean over blocks of each block's cross-entropy
    other = torch.stack([torch.full((4,), 0.25), p1])[None, None]
    two = torch.cat([one_block, other], dim=1)
    expect2 = (expect - math.log(0.25)) / 2
    assert d2s_attention_loss(two, boxes, mask, size, (2, 2)).item() == pytest.approx(expect2)
    none = torch.zeros(1, 2, dtype=torch.bool)
    assert d2s_attention_loss(two, boxes, none, size, (2, 2)).item() == 0.0


def test_spread_attention_by_hand():
    maps = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])  # [B=1, Ts=1, 2x2]
    valid = torch.ones(1, 2, 2, dtype=torch.bool)
    assert torch.allclose(spread_attention(maps, (2, 2), valid), maps.view(1, 1, 2, 2) / 10)
    # valid part 1 x 2 of a 2 x 2 grid: the square of side 2 is the map, cropped to row 0
    valid = torch.tensor([[[True, True], [False, False]]])
    expect = torch.tensor([[[[1 / 3, 2 / 3], [0.0, 0.0]]]])
    assert torch.allclose(spread_attention(maps, (2, 2), valid), expect)
    # a 1 x 1 dynamic grid spreads evenly over the valid cells
    one = spread_attention(torch.ones(1, 1, 1), (1, 1), torch.ones(1, 2, 2, dtype=torch.bool))
    assert torch.allclose(one, torch.full((1, 1, 2, 2), 0.25))


def test_peak_window_and_peak_reference_by_hand():
    attn = torch.zeros(1, 1, 3, 4)
    attn[0, 0, 0, 3] = 0.5  # the peak
    attn[0, 0, 1, 2] = 0.1  # inside its 3 x 3 window
    attn[0, 0, 2, 0] = 0.4  # a second mode, outside
    valid = torch.ones(1, 3, 4, dtype=torch.bool)
    window = peak_window(attn, valid)
    expect = torch.zeros(1, 1, 3, 4)
    expect[0, 0, :2, 2:] = 1.0
    assert torch.equal(window, expect)
    # the reference: centre of mass of (0, 3) x .5 and (1, 2) x .1 on a 3 x 4 grid
    cx = (0.5 * 3.5 / 4 + 0.1 * 2.5 / 4) / 0.6
    cy = (0.5 * 0.5 / 3 + 0.1 * 1.5 / 3) / 0.6
    got = attention_centre(attn * window, valid)
    assert torch.allclose(got, torch.tensor([[[cx, cy]]]))
    # a padded cell is never the peak
    valid[0, 2, 0] = False
    attn[0, 0, 2, 0] = 0.9
    assert torch.equal(peak_window(attn, valid), expect)


def _decoder_inputs(b: int, n_visual: int = 4, n_text: int = 2, d: int = 8):
    torch.manual_seed(0)
    m = n_visual + n_text
    pad = torch.zeros(b, m, dtype=torch.bool)
    pad[:, -1] = True  # one padded text token
    return (
        torch.randn(b, 1, d),  # queries [B, Ts=1, d]
        torch.zeros(1, d),  # query_pos
        torch.randn(b, m, d),  # memory [B*Ts, M, d]
        torch.randn(b, m, d),  # memory_pos
        pad,
    )


def test_decoder_prior_is_added_to_the_visual_logits():
    layer = DecoderLayer(8, 2, 16, 0.0).eval()
    queries, qpos, memory, mpos, pad = _decoder_inputs(2)
    plain_q, plain_a = layer(queries, qpos, memory, mpos, pad, 4, 1.0)
    zero_q, zero_a = layer(queries, qpos, memory, mpos, pad, 4, 1.0, torch.zeros(2, 4))
    assert torch.allclose(plain_q, zero_q, atol=1e-6) and torch.allclose(plain_a, zero_a)
    bias = torch.tensor([[0.0, -2.0, 1.0, 0.5], [3.0, 0.0, 0.0, -1.0]])
    _, attn = layer(queries, qpos, memory, mpos, pad, 4, 1.0, bias)
    # by hand: per head softmax(q k / sqrt(dh) + [bias, 0 on text, -inf on padding]), mean
    w, bb = layer.cross_attn.in_proj_weight, layer.cross_attn.in_proj_bias
    mixed = layer.norm1(queries + layer.self_attn(queries, queries, queries)[0])  # Ts = 1
    q = (mixed[:, 0] + qpos[0]) @ w[:8].T + bb[:8]  # [B, d]
    k = (memory + mpos) @ w[8:16].T + bb[8:16]  # [B, M, d]
    full_bias = torch.cat([bias, torch.zeros(2, 1), torch.full((2, 1), -math.inf)], dim=1)
    heads = [
        torch.softmax(
            (k[..., h * 4 : h * 4 + 4] @ q[:, h * 4 : h * 4 + 4, None])[..., 0] / 2 + full_bias, -1
        )
        for h in range(2)
    ]
    expect = (heads[0] + heads[1])[:, :4] / 2
    assert torch.allclose(attn[:, 0], expect, atol=1e-6)
    # each sample's prior reaches its own rows: the batch equals the samples one by one
    batch_q, _ = layer(queries, qpos, memory, mpos, pad, 4, 1.0, bias)
    for i in range(2):
        one = layer(queries[i : i + 1], qpos, memory[i : i + 1], mpos[i : i + 1],
                    pad[i : i + 1], 4, 1.0, bias[i : i + 1])[0]  # fmt: skip
        assert torch.allclose(batch_q[i], one[0], atol=1e-5)


def test_d2s_attention_equals_the_blocks_own_weights():
    torch.manual_seed(1)
    block = DynamicToStatic(8, 2, 0.0).eval()
    queries, fv = torch.randn(2, 3, 8), torch.randn(2, 4, 5, 8)
    clip_index = torch.tensor([[0, 1, 3], [2, 2, 0]])
    space_pos = torch.randn(5, 8)
    got = block.attention(queries, fv, clip_index, space_pos)  # [B, Ts, S]
    per_frame = frame_features(fv, clip_index)
    q = queries.reshape(6, 1, 8)
    expect = block.cross_attn(q, per_frame + space_pos, per_frame)[1].view(2, 3, 5)
    assert torch.allclose(got, expect, atol=1e-6)
    assert torch.equal(per_frame[4], fv[1, 2])  # sample 1, frame 1 -> clip 2


def _tiny(**kw) -> CSDVLConfig:
    base = dict(d_model=16, n_heads=2, n_layers=2, n_encoder_layers=1, dim_feedforward=16,
                dropout=0.0, image_channels=6, text_channels=5, motion_channels=4, d_map=8,
                map_layers=1, map_kernel=3, box_reference="attention")  # fmt: skip
    return CSDVLConfig(**{**base, **kw})


def _batch(b: int = 2, ts: int = 3, td: int = 3) -> dict:
    g = torch.Generator().manual_seed(2)
    return {
        "image": torch.randn(b, ts, 6, 3, 4, generator=g),
        "text": torch.randn(b, 4, 5, generator=g),
        "text_mask": torch.ones(b, 4, dtype=torch.bool),
        "motion": torch.randn(b, td, 4, 2, 2, generator=g),
        "boxes": torch.tensor([0.4, 0.5, 0.3, 0.3]).repeat(b, ts, 1),
        "box_mask": torch.ones(b, ts, dtype=torch.bool),
        "frame_in_tube": torch.ones(b, ts, dtype=torch.bool),
        "span": torch.tensor([[0.0, 1.0]] * b),
        "frame_size": torch.tensor([[8.0, 6.0]] * b),
    }


def test_d2s_options_in_the_model(one_thread):
    with pytest.raises(SettingError):
        _tiny(collab="s2d", d2s_attention="output")
    torch.manual_seed(3)
    off = build_model(_tiny()).eval()
    output = build_model(_tiny(d2s_attention="output")).eval()
    output.load_state_dict(off.state_dict())
    batch = _batch()
    a, b = off(batch), output(batch)
    assert "d2s_attention" not in a and b["d2s_attention"].shape == (2, 2, 3, 4)
    assert torch.allclose(b["d2s_attention"].sum(-1), torch.ones(2, 2, 3))
    assert torch.equal(a["pred_boxes"], b["pred_boxes"])  # "output" changes nothing
    with pytest.raises(InputError, match="d2s_attention"):
        compute_losses(a, batch, d2s_attention=True)
    prior = build_model(_tiny(d2s_attention="prior", box_reference="attention_peak")).train()
    out = prior(batch)
    terms = compute_losses(out, batch, attention=True, d2s_attention=True)
    sum(terms.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prior.parameters())
