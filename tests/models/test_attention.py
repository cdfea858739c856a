"""stvg.models.attention against torch's own modules: same parameters, same results, and a
CPU dropout whose rate and scale are what it says."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stvg.models import build_model
from stvg.models.attention import (
    Dropout,
    MultiheadAttention,
    attention_with_dropout,
    drop_threshold,
    dropout,
    keep_mask,
)

E, H = 16, 4


def pair(p: float = 0.0) -> tuple[MultiheadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    ours = MultiheadAttention(E, H, dropout=p)
    ref = nn.MultiheadAttention(E, H, dropout=p, batch_first=True)
    ref.load_state_dict(ours.state_dict())  # same keys: this fails if a name changed
    return ours, ref


def inputs(b: int = 3, lq: int = 5, lk: int = 7) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    return tuple(torch.randn(b, n, E, generator=g) for n in (lq, lk, lk))


@pytest.mark.parametrize("kind", ["self", "shared_kv", "cross"])
def test_same_outputs_as_torch_in_eval(kind):
    ours, ref = pair(p=0.1)
    ours.eval(), ref.eval()
    q, k, v = inputs()
    if kind == "self":
        q = k = torch.randn(3, 7, E)
    elif kind == "shared_kv":
        v = k
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    got = ours(q, k, v, key_padding_mask=pad, need_weights=False)[0]
    want = ref(q, k, v, key_padding_mask=pad, need_weights=False)[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_float_per_head_mask_and_bool_2d_mask_match_torch():
    ours, ref = pair()
    q, k, v = inputs()
    bias = torch.randn(3 * H, 5, 7)
    bias[:, :, 6] = float("-inf")
    for mask in (bias, torch.rand(5, 7) > 0.7):
        mask = mask.clone()
        if mask.dtype == torch.bool:
            mask[:, 0] = False  # at least one key per row
        got = ours(q, k, v, attn_mask=mask, need_weights=False)[0]
        want = ref(q, k, v, attn_mask=mask, need_weights=False)[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_need_weights_is_the_parent_forward():
    ours, ref = pair()
    q, k, v = inputs()
    got = ours(q, k, v)
    want = ref(q, k, v)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_training_path_with_dropout_zero_matches_torch_and_its_gradients():
    ours, ref = pair(p=0.0)
    ours.train(), ref.train()
    q, k, v = inputs()
    ours(q, k, v, need_weights=False)[0].square().sum().backward()
    ref(q, k, v, need_weights=False)[0].square().sum().backward()
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_attention_with_dropout_is_the_direct_formula():
    """With the mask drawn under one seed, the result equals softmax(qk^T/sqrt(d)+m) * keep /
    (1 - p') @ v computed here directly; a row with every key masked gives zeros."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, H, n, 8, generator=g) for n in (5, 6, 6))
    mask = torch.zeros(2, 1, 5, 6)
    mask[0, 0, 3] = float("-inf")  # query 3 of item 0 sees nothing
    mask[1, 0, :, 4:] = float("-inf")
    p = 0.25
    torch.manual_seed(7)
    got = attention_with_dropout(q, k, v, mask, p)
    torch.manual_seed(7)
    keep = keep_mask((2, H, 5, 6), p).float()
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + mask, -1)
    weights = torch.nan_to_num(weights, nan=0.0)
    want = (weights * keep / (1 - drop_threshold(p) / 65536)) @ v
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.all(got[0, :, 3] == 0)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_cpu_dropout_rate_and_scale(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, p)
    dropped = (y == 0).float().mean().item()
    p_rounded = drop_threshold(p) / 65536
    assert abs(p_rounded - p) <= 1 / 131072
    # binomial: 5 standard deviations of the observed rate
    assert abs(dropped - p_rounded) < 5 * math.sqrt(p * (1 - p) / x.numel())
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p_rounded)))


def test_cpu_dropout_is_seeded_and_uncorrelated_across_the_word():
    torch.manual_seed(3)
    a = keep_mask((100_000,), 0.5)
    torch.manual_seed(3)
    assert torch.equal(a, keep_mask((100_000,), 0.5))
    # the four 16-bit slices of each random word are each kept half the time
    for lane in range(4):
        assert abs(a[lane::4].float().mean().item() - 0.5) < 0.01


def test_dropout_off_in_eval_and_gradient_is_the_mask():
    layer = Dropout(0.3)
    x = torch.randn(50, 40, requires_grad=True)
    assert layer.eval()(x) is x
    torch.manual_seed(0)
    y = layer.train()(x)
    y.sum().backward()
    kept = y.detach() != 0
    torch.testing.assert_close(
        x.grad[kept], torch.full_like(x.grad[kept], y[kept][0].item() / x[kept][0].item())
    )
    assert torch.all(x.grad[~kept] == 0)


def test_model_outputs_unchanged_against_torch_attention():
    """CSDVL with torch's own attention and dropout modules swapped back in gives the same
    outputs in eval (the modules share their parameters)."""
    from test_csdvl import batch, tiny  # tests/models is on the path under pytest

    torch.manual_seed(0)
    net = build_model(tiny()).eval()
    data = batch()
    with torch.no_grad():
        got = net(data)
        for module in net.modules():
            if isinstance(module, MultiheadAttention):
                module.__class__ = nn.MultiheadAttention
            elif isinstance(module, Dropout):
                module.__class__ = nn.Dropout
        want = net(data)
    for key in ("pred_boxes", "score_map", "frame_logits", "clip_logits"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5, msg=key)


def test_a_padding_mask_that_masks_nothing_is_left_out():
    from stvg.models.attention import additive_mask

    none = torch.zeros(2, 5, dtype=torch.bool)
    assert additive_mask(2, H, 3, 5, none, None, torch.float32) is None
    some = none.clone()
    some[1, 4] = True
    mask = additive_mask(2, H, 3, 5, some, None, torch.float32)
    assert (
        mask.shape == (2, 1, 1, 5)
        and torch.isneginf(mask[1, 0, 0, 4])
        and mask.sum() == float("-inf")
    )
    assert torch.count_nonzero(mask) == 1
