"""The dynamic stream's eq. (1) against plain softmax(QK^T / sqrt d) V on copied weights."""

import math

import torch

from stvg.models.dynamic_stream import DynamicStream, TextVisualCrossAttention


def attention(mha, q, k, v):
    """Multi-head softmax(QK^T/sqrt(d_head))V with ``mha``'s weights, one sequence, no mask.

    ``q`` [Lq, d], ``k``/``v`` [Lk, d] -> [Lq, d]. Written with loops over heads.
    """
    d, h = mha.embed_dim, mha.num_heads
    dh = d // h
    w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
    qq = q @ w[:d].T + b[:d]
    kk = k @ w[d : 2 * d].T + b[d : 2 * d]
    vv = v @ w[2 * d :].T + b[2 * d :]
    heads = []
    for i in range(h):
        sl = slice(i * dh, (i + 1) * dh)
        scores = qq[:, sl] @ kk[:, sl].T / math.sqrt(dh)
        heads.append(torch.softmax(scores, dim=-1) @ vv[:, sl])
    cat = torch.cat(heads, dim=1)
    return cat @ mha.out_proj.weight.detach().T + mha.out_proj.bias.detach()


def direct_eq1(module, hv, hl, n_tokens, mean_pool=True):
    """Eq. (1) for one sample: hv [T, H, W, d], hl [L, d] with ``n_tokens`` real tokens."""
    t, hh, ww, d = hv.shape
    real = hl[:n_tokens]  # padded tokens are simply left out of the keys
    out_v = torch.empty_like(hv)
    for y in range(hh):
        for x in range(ww):
            q = hv[:, y, x]  # H_v^{(h,w)} [T, d]
            out_v[:, y, x] = q + attention(module.visual_to_text, q, real, real)
    if mean_pool:
        pooled = sum(hv[:, y, x] for y in range(hh) for x in range(ww)) / (hh * ww)  # [T, d]
    else:
        pooled = hv.reshape(t * hh * ww, d)
    out_l = hl + attention(module.text_to_visual, hl, pooled, pooled)
    return out_v, out_l


def test_eq1_with_pooled_keys_matches_direct_formula():
    torch.manual_seed(0)
    module = TextVisualCrossAttention(d_model=16, n_heads=2, dropout=0.0).eval()
    b, t, hh, ww, d, length = 2, 3, 2, 3, 16, 5
    hv = torch.randn(b, t, hh, ww, d)
    hl = torch.randn(b, length, d)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    with torch.no_grad():
        got_v, got_l = module(hv.reshape(b, t, hh * ww, d), hl, mask)
    for i, n in enumerate((5, 3)):
        want_v, want_l = direct_eq1(module, hv[i], hl[i], n)
        assert torch.allclose(got_v[i].reshape(t, hh, ww, d), want_v, atol=1e-5)
        assert torch.allclose(got_l[i], want_l, atol=1e-5)


def test_eq1_without_mean_pool_attends_to_all_tokens():
    torch.manual_seed(1)
    module = TextVisualCrossAttention(16, 4, 0.0, mean_pool=False).eval()
    hv = torch.randn(1, 2, 2, 2, 16)
    hl = torch.randn(1, 4, 16)
    mask = torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        got_v, got_l = module(hv.reshape(1, 2, 4, 16), hl, mask)
    want_v, want_l = direct_eq1(module, hv[0], hl[0], 4, mean_pool=False)
    assert torch.allclose(got_v[0].reshape(2, 2, 2, 16), want_v, atol=1e-5)
    assert torch.allclose(got_l[0], want_l, atol=1e-5)
    module.mean_pool = True  # same weights, pooled keys: a different result
    with torch.no_grad():
        pooled_l = module(hv.reshape(1, 2, 4, 16), hl, mask)[1]
    assert not torch.allclose(pooled_l, got_l, atol=1e-4)


def test_without_spatial_tokens_projects_the_spatial_mean():
    torch.manual_seed(2)
    kw = dict(motion_channels=6, text_channels=5, d_model=16, n_heads=2, n_layers=1)
    stream = DynamicStream(**kw, dim_feedforward=32, dropout=0.0, spatial=False).eval()
    motion = torch.randn(2, 3, 6, 2, 3)
    fv, _, grid = stream.embed(motion, torch.randn(2, 4, 5))
    assert grid == (1, 1) and fv.shape == (2, 3, 1, 16)
    mean = motion.sum(dim=(3, 4)) / 6  # [B,Td,C]
    lin, norm = stream.motion_proj[0], stream.motion_proj[1]
    z = mean @ lin.weight.detach().T + lin.bias.detach()
    z = (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + 1e-5)
    want = z * norm.weight.detach() + norm.bias.detach()
    assert torch.allclose(fv[:, :, 0], want, atol=1e-5)


def test_last_layer_has_no_text_branch():
    stream = DynamicStream(
        motion_channels=6,
        text_channels=5,
        d_model=16,
        n_heads=2,
        n_layers=3,
        dim_feedforward=32,
        dropout=0.0,
    )
    assert [layer.update_text for layer in stream.layers] == [True, True, False]
    assert stream.layers[2].cross.text_to_visual is None
