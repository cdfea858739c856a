"""Static stream: the alpha-scaled attention maps A and the padding of the memory."""

import math

import torch
from torch import nn

from stvg.models.static_stream import DecoderLayer, StaticStream, scaled_attention_weights


def direct_weights(mha, q, k, alpha, n_real):
    """Head-averaged softmax(alpha * Q K^T / sqrt(dh)) over the first ``n_real`` keys: [Lq, n_real]."""
    d, h = mha.embed_dim, mha.num_heads
    dh = d // h
    w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
    qq = q @ w[:d].T + b[:d]
    kk = k[:n_real] @ w[d : 2 * d].T + b[d : 2 * d]
    total = 0
    for i in range(h):
        sl = slice(i * dh, (i + 1) * dh)
        total = total + torch.softmax(alpha * qq[:, sl] @ kk[:, sl].T / math.sqrt(dh), dim=-1)
    return total / h


def test_alpha_one_equals_attention_module_weights():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    q, k = torch.randn(3, 2, 16), torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    with torch.no_grad():
        want = mha(q, k, k, key_padding_mask=pad)[1]
        got = scaled_attention_weights(mha, q, k, pad, alpha=1.0)
    assert torch.allclose(got, want, atol=1e-6)


def test_alpha_scales_the_projected_query():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    q, k = torch.randn(1, 1, 16), torch.randn(1, 6, 16)
    pad = torch.tensor([[False] * 4 + [True] * 2])
    with torch.no_grad():
        got = scaled_attention_weights(mha, q, k, pad, alpha=0.1)
    want = direct_weights(mha, q[0], k[0], 0.1, 4)
    assert torch.allclose(got[0, :, :4], want, atol=1e-6)
    assert torch.all(got[0, :, 4:] == 0)


def test_decoder_attention_map_covers_visual_cells_only():
    torch.manual_seed(2)
    layer = DecoderLayer(16, 2, 32, 0.0).eval()
    b, ts, hw, n_txt = 2, 3, 4, 3
    queries = torch.randn(b, ts, 16)
    memory = torch.randn(b * ts, hw + n_txt, 16)
    pos = torch.randn(b * ts, hw + n_txt, 16)
    pad = torch.zeros(b * ts, hw + n_txt, dtype=torch.bool)
    pad[ts:, -1] = True  # second sample has 2 text tokens
    qpos = torch.randn(ts, 16)
    with torch.no_grad():
        out, attn = layer(queries, qpos, memory, pos, pad, hw, alpha=0.5)
        # reproduce the query that enters the cross-attention
        q = queries + qpos
        sa = layer.self_attn(q, q, queries)[0]
        after_sa = layer.norm1(queries + sa)
    assert out.shape == (b, ts, 16) and attn.shape == (b, ts, hw)
    for i in range(b):
        n_real = hw + (n_txt if i == 0 else n_txt - 1)
        for t in range(ts):
            qf = (after_sa[i, t] + qpos[t])[None]
            key = memory[i * ts + t] + pos[i * ts + t]
            full = direct_weights(layer.cross_attn, qf, key, 0.5, n_real)[0]
            assert torch.allclose(attn[i, t], full[:hw], atol=1e-5)
            assert attn[i, t].sum() < 1.0  # the text tokens take the rest of the mass


def test_encoder_ignores_padded_text_and_image_cells():
    torch.manual_seed(3)
    stream = StaticStream(
        image_channels=5,
        text_channels=6,
        d_model=16,
        n_heads=2,
        n_encoder_layers=2,
        n_decoder_layers=1,
        dim_feedforward=32,
        dropout=0.0,
    ).eval()
    image = torch.randn(1, 2, 5, 2, 3)
    valid = torch.ones(1, 2, 3, dtype=torch.bool)
    valid[0, :, 2] = False  # last column is padding
    text = torch.randn(1, 4, 6)
    mask = torch.tensor([[True, True, False, False]])
    with torch.no_grad():
        mem, _, pad = stream.encode(image, valid, text, mask)
        image2, text2 = image.clone(), text.clone()
        image2[..., 2] = 100.0  # change only padded cells and padded tokens
        text2[0, 2:] = -50.0
        mem2, _, _ = stream.encode(image2, valid, text2, mask)
    keep = ~pad  # [B*Ts, HW+L]
    assert pad.shape == (2, 6 + 4) and int(keep.sum()) == 2 * (4 + 2)
    assert torch.allclose(mem[keep], mem2[keep], atol=1e-5)
