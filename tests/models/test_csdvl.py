"""The assembled CSDVL: shapes, gradients in every mode, and what each ablation switch cuts."""

import pytest
import torch

from stvg.errors import InputError
from stvg.models import CSDVL, CSDVLConfig, build_model, proposal_mask
from stvg.models.collaboration import COLLAB_MODES, GridSizes

B, TS, TD, H, W, H2, W2, L = 2, 6, 4, 3, 4, 2, 2, 5


def tiny(**overrides) -> CSDVLConfig:
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
        d_map=16,
        map_layers=2,
        map_kernel=3,
    )
    values.update(overrides)
    return CSDVLConfig(**values)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(B, TS, 8, H, W, generator=g),
        "text": torch.randn(B, L, 12, generator=g),
        "text_mask": torch.tensor([[True] * L, [True] * 3 + [False] * 2]),
        "motion": torch.randn(B, TD, 10, H2, W2, generator=g),
    }


def model(seed: int = 0, **overrides) -> CSDVL:
    torch.manual_seed(seed)
    return build_model(tiny(**overrides)).eval()


def test_output_shapes_and_ranges():
    out = model()(batch())
    assert out["pred_boxes"].shape == (B, TS, 4)
    assert out["score_map"].shape == (B, TD, TD)
    assert torch.equal(out["map_mask"], proposal_mask(TD))
    assert out["frame_logits"].shape == (B, TS) and out["clip_logits"].shape == (B, TD)
    assert out["s2d_attention"].shape == (B, 2, TS, H, W)
    assert 0 <= out["pred_boxes"].min() and out["pred_boxes"].max() <= 1
    sums = out["s2d_attention"].sum(dim=(3, 4))
    assert torch.all(sums > 0) and torch.all(sums < 1)  # text tokens take part of the mass


@pytest.mark.parametrize("mode", COLLAB_MODES)
def test_every_parameter_gets_a_gradient(mode):
    net = model(collab=mode).train()
    out = net(batch())
    loss = (
        out["pred_boxes"].sum()
        + out["score_map"][:, out["map_mask"]].sum()
        + out["frame_logits"].sum()
        + out["clip_logits"].sum()
    )
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing


def changed(a: torch.Tensor, b: torch.Tensor) -> bool:
    return not torch.allclose(a, b, atol=1e-6)


def outputs_after_swapping(mode: str, key: str, **overrides):
    net = model(collab=mode, **overrides)
    one, two = batch(0), batch(0)
    two[key] = batch(1)[key]
    with torch.no_grad():
        return net(one), net(two)


def test_collab_none_keeps_the_streams_independent():
    a, b = outputs_after_swapping("none", "motion")
    assert torch.equal(a["pred_boxes"], b["pred_boxes"])
    assert torch.equal(a["frame_logits"], b["frame_logits"])
    assert changed(a["score_map"], b["score_map"])
    a, b = outputs_after_swapping("none", "image")
    assert torch.equal(a["score_map"], b["score_map"])
    assert torch.equal(a["clip_logits"], b["clip_logits"])
    assert changed(a["pred_boxes"], b["pred_boxes"])


@pytest.mark.parametrize(
    ("mode", "motion_to_boxes", "image_to_map"),
    [("s2d", False, True), ("d2s", True, False), ("full", True, True), ("concat_fc", True, True)],
)
def test_each_direction_carries_information(mode, motion_to_boxes, image_to_map):
    a, b = outputs_after_swapping(mode, "motion")
    assert changed(a["pred_boxes"], b["pred_boxes"]) == motion_to_boxes
    a, b = outputs_after_swapping(mode, "image")
    assert changed(a["score_map"], b["score_map"]) == image_to_map


def test_without_spatial_tokens_the_dynamic_stream_ignores_layout():
    def map_after_shuffle(spatial: bool) -> tuple[torch.Tensor, torch.Tensor]:
        net = model(collab="none", dynamic_spatial=spatial)
        one = batch()
        two = dict(one, motion=one["motion"].flip(3, 4))  # same cells, other positions
        with torch.no_grad():
            return net(one)["score_map"], net(two)["score_map"]

    a, b = map_after_shuffle(spatial=False)
    assert torch.allclose(a, b, atol=1e-5)
    a, b = map_after_shuffle(spatial=True)
    assert changed(a, b)
    out = model(collab="full", dynamic_spatial=False)(batch())  # s2d with a 1 x 1 grid
    assert out["score_map"].shape == (B, TD, TD)


def test_mean_pool_switch_changes_the_computation():
    pooled = model(collab="none")
    full = model(collab="none", dynamic_mean_pool=False)
    full.load_state_dict(pooled.state_dict())  # same parameters, only the keys differ
    with torch.no_grad():
        assert changed(pooled(batch())["score_map"], full(batch())["score_map"])


def test_alpha_flattens_the_attention_maps():
    sharp = model(alpha=1.0)
    flat = model(alpha=0.1)
    flat.load_state_dict(sharp.state_dict())
    with torch.no_grad():
        a1 = sharp(batch())["s2d_attention"]
        a2 = flat(batch())["s2d_attention"]
    # the first layer sees the same queries, so only the temperature differs there
    assert a2[:, 0].std(dim=(2, 3)).mean() < a1[:, 0].std(dim=(2, 3)).mean()


def test_padded_image_cells_get_no_attention():
    net = model()
    inputs = batch()
    inputs["image_mask"] = torch.ones(B, H, W, dtype=torch.bool)
    inputs["image_mask"][1, :, 3] = False
    with torch.no_grad():
        attn = net(inputs)["s2d_attention"]
    assert torch.all(attn[1, :, :, :, 3] == 0) and torch.all(attn[0, :, :, :, 3] > 0)


def test_config_presets_and_validation():
    cfg = CSDVLConfig.from_preset("hcstvg-v2", d_model=64)
    assert cfg.alpha == 0.1 and cfg.d_model == 64 and cfg.n_layers == 6
    assert CSDVLConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError) as err:
        CSDVLConfig.from_dict({"collab": "both"})
    assert err.value.field == "collab"
    with pytest.raises(InputError) as err:
        CSDVLConfig.from_dict({"hidden": 3})
    assert err.value.field == "hidden"
    with pytest.raises(InputError):
        CSDVLConfig.from_preset("kinetics")
    net = build_model({**tiny().to_dict(), "collab": "d2s"})
    assert net.cfg.collab == "d2s" and len(net.collab) == 2


@pytest.mark.parametrize(
    ("collab", "pool", "reads"), [("full", "attention", 1), ("s2d", "mean", 1), ("d2s", "mean", 0)]
)
def test_grid_sizes_are_read_once_per_forward(monkeypatch, collab, pool, reads):
    # reading the valid sizes is a host sync: once per forward, not once per layer, and not at
    # all when nothing aligns maps (d2s with mean pooling)
    calls = []
    original = GridSizes.of.__func__
    monkeypatch.setattr(
        GridSizes, "of", classmethod(lambda cls, v: calls.append(1) or original(cls, v))
    )
    inputs = batch()
    inputs["image_mask"] = torch.ones(B, H, W, dtype=torch.bool)
    inputs["image_mask"][1, :, 3] = False
    with torch.no_grad():
        model(collab=collab, dynamic_pool=pool, n_layers=3)(inputs)
    assert len(calls) == reads


def test_grid_sizes_group_the_samples_by_valid_size():
    valid = torch.zeros(3, 2, 4, dtype=torch.bool)
    valid[0], valid[2] = True, True  # 2 x 4
    valid[1, :2, :2] = True  # 2 x 2, batch-padded
    groups = [(rows.tolist(), hb, wb) for rows, hb, wb in GridSizes.of(valid).groups]
    assert groups == [([False, True, False], 2, 2), ([True, False, True], 2, 4)]
