"""Switches for from-scratch training (off in the paper presets): 2D-TAN's sentence fusion in the
temporal head, text-conditioned object queries and the attention-weighted pool of F_d."""

from __future__ import annotations

import torch

from stvg.models import CSDVLConfig, build_model
from stvg.models.csdvl import masked_mean, pool_dynamic
from stvg.models.heads import INVALID_LOGIT, TemporalHead, proposal_map, proposal_mask


def test_masked_mean_by_hand():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(masked_mean(x, mask), torch.tensor([[2.0, 3.0]]))


def test_sentence_fusion_against_a_direct_computation():
    torch.manual_seed(0)
    head = TemporalHead(d_model=4, d_map=3, num_layers=1, kernel_size=1, text_fusion=True).eval()
    t = 3
    mask = proposal_mask(t, [2])  # every span of up to 3 clips: the upper triangle
    assert torch.equal(mask, torch.ones(t, t, dtype=torch.bool).triu())
    fd, sentence = torch.randn(1, t, 4), torch.randn(1, 4)
    with torch.no_grad():
        got = head(fd, mask, sentence)[0]
        m = proposal_map(head.proj(fd), mask)[0]  # [C, T, T]
        s = head.text_proj(sentence)[0]  # [C]
    w, b = head.convs[0].weight[:, :, 0, 0].detach(), head.convs[0].bias.detach()
    pw, pb = head.pred.weight.detach()[0, :, 0, 0], head.pred.bias.detach()[0]
    for i in range(t):
        for j in range(t):
            if not mask[i, j]:
                assert got[i, j] == INVALID_LOGIT
                continue
            fused = m[:, i, j] * s
            fused = fused / fused.norm().clamp(min=1e-12)  # L2 over channels, as 2D-TAN
            want = pw @ torch.relu(w @ fused + b) + pb  # a 1x1 conv sees one valid cell
            assert torch.allclose(got[i, j], want, atol=1e-5)


def _batch(text: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    return {
        "image": torch.randn(1, 4, 256, 3, 4),
        "text": text,
        "text_mask": torch.ones(1, text.shape[1], dtype=torch.bool),
        "motion": torch.randn(1, 8, 512, 2, 2),
    }


def _model(**switches: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = CSDVLConfig.from_preset("synthetic", image_channels=256, motion_channels=512, **switches)
    return build_model(cfg).eval()


def test_switches_make_the_heads_read_the_sentence():
    text_a, text_b = torch.randn(1, 5, 768), torch.randn(1, 5, 768)
    plain = _model(temporal_text_fusion=False, query_from_text=False)
    fused = _model(temporal_text_fusion=True, query_from_text=True)
    assert fused.temporal_head.text_proj is not None and fused.query_text is not None
    assert plain.temporal_head.text_proj is None and plain.query_text is None
    with torch.no_grad():
        out_a, out_b = fused(_batch(text_a)), fused(_batch(text_b))
    assert not torch.allclose(out_a["score_map"], out_b["score_map"])
    # the object queries: zero the projection and the model is the plain one on those weights
    with torch.no_grad():
        fused.query_text.weight.zero_()
        fused.query_text.bias.zero_()
        queries = fused.static.initial_queries(1, 4)
        sentence = masked_mean(fused.static.text_proj(text_a), torch.ones(1, 5, dtype=torch.bool))
        assert torch.equal(queries + fused.query_text(sentence)[:, None], queries)


def test_every_parameter_gets_a_gradient_with_both_switches():
    model = _model(temporal_text_fusion=True, query_from_text=True).train()
    out = model(_batch(torch.randn(1, 5, 768)))
    loss = out["score_map"].masked_fill(~out["map_mask"], 0).sum() + out["pred_boxes"].sum()
    (loss + out["frame_logits"].sum() + out["clip_logits"].sum()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_pool_dynamic_by_hand():
    # 1 sample, Ts = Td = 2, a 2 x 2 grid on both streams (no interpolation), d = 1
    fv = torch.tensor([[[[1.0], [2.0], [3.0], [4.0]], [[10.0], [20.0], [30.0], [40.0]]]])
    attn = torch.zeros(1, 2, 2, 2)
    attn[0, 0, 0, 1] = 0.4  # frame 0: all its mass on cell 1 (maps need not sum to 1)
    attn[0, 1, 1, 0], attn[0, 1, 1, 1] = 0.3, 0.1  # frame 1: cells 2 and 3, 3 : 1
    assert torch.equal(pool_dynamic(fv, attn, (2, 2), "mean"), torch.tensor([[[2.5], [25.0]]]))
    got = pool_dynamic(fv, attn, (2, 2), "attention")
    assert torch.allclose(got, torch.tensor([[[2.0], [0.75 * 30 + 0.25 * 40]]]))
