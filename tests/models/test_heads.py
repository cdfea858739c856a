"""Heads: the 2D proposal map and its mask against brute force, the masked conv, best_span."""

import torch

from stvg.models.heads import (
    INVALID_LOGIT,
    BoxHead,
    TemporalHead,
    best_span,
    default_pooling_counts,
    proposal_map,
    proposal_mask,
)


def brute_force_mask_64():
    """2D-TAN's 64-clip map: every span up to 16 clips; longer ones on a coarser grid."""
    mask = torch.zeros(64, 64, dtype=torch.bool)
    for i in range(64):
        for j in range(i, 64):
            o = j - i
            if o <= 15:
                mask[i, j] = True
            elif 17 <= o <= 31 and o % 2 == 1 and i % 2 == 0:
                mask[i, j] = True
            elif 35 <= o <= 63 and (o - 31) % 4 == 0 and i % 4 == 0:
                mask[i, j] = True
    return mask


def test_small_maps_are_dense_upper_triangles():
    for t in (1, 4, 16):
        want = torch.tensor([[i <= j for j in range(t)] for i in range(t)])
        assert torch.equal(proposal_mask(t), want)


def test_sparse_mask_for_64_clips():
    assert default_pooling_counts(64) == [15, 8, 8]
    assert default_pooling_counts(128) == [15, 8, 8, 8]
    mask = proposal_mask(64)
    assert torch.equal(mask, brute_force_mask_64())
    assert mask[0, 63] and not mask[1, 63] and not mask[0, 16]


def test_proposal_map_is_the_mean_over_each_valid_span():
    torch.manual_seed(0)
    feats = torch.randn(2, 5, 3)
    mask = proposal_mask(5, [2])  # spans of at most 3 clips
    got = proposal_map(feats, mask)  # [B, C, T, T]
    for b in range(2):
        for i in range(5):
            for j in range(5):
                if i <= j and j - i <= 2:
                    want = sum(feats[b, k] for k in range(i, j + 1)) / (j - i + 1)
                else:
                    want = torch.zeros(3)
                assert torch.allclose(got[b, :, i, j], want, atol=1e-6), (i, j)


def test_masked_conv_head_against_brute_force():
    torch.manual_seed(1)
    head = TemporalHead(d_model=4, d_map=3, num_layers=1, kernel_size=3).eval()
    t = 4
    mask = proposal_mask(t, [1])  # diagonal and first off-diagonal only
    fd = torch.randn(1, t, 4)
    with torch.no_grad():
        got = head(fd, mask)[0]
        m = proposal_map(head.proj(fd), mask)[0]  # [C, T, T]
    w, bias = head.convs[0].weight.detach(), head.convs[0].bias.detach()  # [C,C,3,3]
    pw, pb = head.pred.weight.detach()[0, :, 0, 0], head.pred.bias.detach()[0]
    for i in range(t):
        for j in range(t):
            if not mask[i, j]:
                assert got[i, j] == INVALID_LOGIT
                continue
            acc = bias.clone()
            count = 0
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    a, c = i + di, j + dj
                    if 0 <= a < t and 0 <= c < t:
                        acc += w[:, :, di + 1, dj + 1] @ m[:, a, c]
                        count += int(mask[a, c])
            want = pw @ (torch.relu(acc) * 9 / count) + pb
            assert torch.allclose(got[i, j], want, atol=1e-5)


def test_best_span_takes_the_argmax_over_valid_proposals():
    mask = proposal_mask(3)
    scores = torch.tensor(
        [
            [[0.1, 0.2, 0.3], [9.0, 0.5, 0.4], [0.0, 0.0, 0.2]],  # 9.0 is below the diagonal
            [[0.1, 0.2, 0.3], [0.0, 0.5, 0.7], [0.0, 0.0, 0.2]],
        ]
    )
    start, end, score = best_span(scores, mask)
    assert start.tolist() == [1, 1] and end.tolist() == [2, 3]  # (1,1) -> [1, 2); (1,2) -> [1, 3)
    assert torch.allclose(score, torch.tensor([0.5, 0.7]))


def test_box_head_outputs_normalized_boxes():
    head = BoxHead(8)
    boxes = head(torch.randn(2, 5, 8) * 100)
    assert boxes.shape == (2, 5, 4) and boxes.min() >= 0 and boxes.max() <= 1
