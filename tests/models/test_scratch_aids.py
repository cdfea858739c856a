"""The scratch aids of CG-STVG and CoSTA (``s2d_attention`` for ``loss_att``, ``box_reference``):
the reference from a hand-built map, the maps' shape and sum, gradients, the defaults, and the
error when ``loss_att`` has no map to train."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from stvg.errors import InputError
from stvg.models.box_reference import cell_attention, reference_point
from stvg.models.cgstvg import CGSTVG_PRESETS, CGSTVGConfig, build_cgstvg
from stvg.models.costa import COSTA_PRESETS, CoSTAConfig, build_costa
from stvg.models.costa_decoder import SpatialDecoder
from stvg.models.costa_encoder import SpaceTimeFusionEncoder
from stvg.models.position import sine_position_2d
from stvg.models.zoo import MODELS
from stvg.train.losses import total_loss

B, TS, TD, H, W, L = 2, 4, 2, 3, 4, 5
D = 32
COMMON = dict(
    d_model=D,
    n_heads=4,
    n_encoder_layers=1,
    dim_feedforward=48,
    dropout=0.0,
    image_channels=8,
    text_channels=12,
    motion_channels=10,
)


def cgstvg(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_cgstvg(CGSTVGConfig(**{**COMMON, "n_layers": 2, **overrides})).eval()


def costa(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers = dict(n_temporal_layers=1, n_spatial_layers=2)
    return build_costa(CoSTAConfig(**{**COMMON, **layers, **overrides})).eval()


def batch(padded: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    in_tube = torch.zeros(B, TS, dtype=torch.bool)
    in_tube[0, 1:3] = True
    in_tube[1, 0:4] = True
    boxes = torch.tensor([0.6, 0.4, 0.3, 0.5]).expand(B, TS, 4).clone()
    valid = torch.ones(B, H, W, dtype=torch.bool)
    if padded:
        valid[1, :, 3] = False  # sample 1: a 3 x 3 grid padded to 3 x 4
    return {
        "image": torch.randn(B, TS, 8, H, W, generator=g),
        "image_mask": valid,
        "text": torch.randn(B, L, 12, generator=g),
        "text_mask": torch.tensor([[True] * L, [True] * 3 + [False] * 2]),
        "motion": torch.randn(B, TD, 10, 2, 2, generator=g),
        "boxes": boxes,
        "box_mask": in_tube.clone(),
        "frame_in_tube": in_tube,
    }


def cell_centres(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y of every cell of a full ``h x w`` grid, [h, w] each."""
    ys = ((torch.arange(h) + 0.5) / h)[:, None].expand(h, w)
    xs = ((torch.arange(w) + 0.5) / w)[None, :].expand(h, w)
    return xs, ys


# ----------------------------------------------------------------------------- the reference
def test_reference_from_a_hand_built_map():
    # One frame over a 3 x 4 grid + 2 text tokens; 0.3 on cell (0, 1), 0.1 on cell (2, 3), 0.6 on
    # text: on the cells 3/4 and 1/4, so x = 3/4 * 1.5/4 + 1/4 * 3.5/4, y = 3/4 * .5/3 + 1/4 * 2.5/3.
    weights = torch.zeros(1, 1, H * W + 2)
    weights[0, 0, 0 * W + 1], weights[0, 0, 2 * W + 3], weights[0, 0, H * W :] = 0.3, 0.1, 0.3
    valid = torch.ones(1, H, W, dtype=torch.bool)
    cells = cell_attention(weights, valid)
    assert cells.shape == (1, 1, H, W)
    assert cells[0, 0, 0, 1].item() == pytest.approx(0.75)
    assert cells[0, 0, 2, 3].item() == pytest.approx(0.25)
    want = torch.tensor([0.75 * 1.5 / 4 + 0.25 * 3.5 / 4, 0.75 * 0.5 / 3 + 0.25 * 2.5 / 3])
    assert torch.allclose(reference_point(cells, valid, "attention")[0, 0], want)
    assert reference_point(cells, valid, "none") is None


def test_costa_box_centre_is_the_attended_cell():
    # Every cell but (1, 2) padded: the layers attend only it (and the text), so the reference is
    # that cell's centre; with a zero delta head the boxes sit there, with the anchors' size.
    torch.manual_seed(2)
    dec = SpatialDecoder(D, 4, 2, 48, 0.0, box_reference="attention")
    for layer in dec.box_delta.layers:
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    cls = torch.randn(1, 3, D)
    memory, pos = torch.randn(3, H * W + 2, D), torch.randn(3, H * W + 2, D)
    pad = torch.ones(3, H * W + 2, dtype=torch.bool)
    pad[:, 1 * W + 2] = pad[:, H * W :] = False
    boxes, _, attention = dec(cls, cls, memory, pos, pad, torch.ones(1, H, W, dtype=torch.bool))
    want = torch.tensor([2.5 / W, 1.5 / H]).expand(2, 1, 3, 2)
    torch.testing.assert_close(boxes[..., :2], want, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        boxes[..., 2:], dec.initial_anchors(cls)[None, ..., 2:].expand(2, 1, 3, 2)
    )
    assert attention.shape == (2, 1, 3, H * W + 2)


def test_cgstvg_box_centre_is_the_centre_of_mass_of_its_map():
    net = cgstvg(box_reference="attention")
    torch.nn.init.zeros_(net.box_head.mlp.layers[-1].weight)  # the offset is 0: centre = reference
    torch.nn.init.zeros_(net.box_head.mlp.layers[-1].bias)
    with torch.no_grad():
        out = net(batch())
    xs, ys = cell_centres(H, W)
    maps = out["s2d_attention"]  # [B,K,Ts,h,w]
    want = torch.stack(((maps * xs).sum((-2, -1)), (maps * ys).sum((-2, -1))), dim=-1)
    torch.testing.assert_close(out["stage_boxes"][..., :2], want, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- the maps
@pytest.mark.parametrize("build", [cgstvg, costa])
def test_maps_sum_to_one_over_the_valid_cells(build):
    net = build(**({"cell_attention": True} if build is cgstvg else {}))
    with torch.no_grad():
        maps = net(batch(padded=True))["s2d_attention"]
    assert maps.shape == (B, 2, TS, H, W)  # [B, N layers, Ts, h, w], CSDVL's
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(B, 2, TS))
    assert float(maps[1, :, :, :, 3].abs().max()) == 0.0  # sample 1's padded column


@pytest.mark.parametrize("name", ["cgstvg", "costa"])
def test_with_the_aids_every_parameter_gets_a_gradient(name):
    aids = {"cgstvg": dict(cell_attention=True, theta_t=0.0, theta_s=0.0), "costa": {}}[name]
    net = (cgstvg if name == "cgstvg" else costa)(box_reference="attention", **aids).train()
    config = SimpleNamespace(loss_att=1.0)
    inputs = batch()
    terms = MODELS[name].losses(net(inputs), inputs, config)
    assert "att" in terms and MODELS[name].weights(config)["att"] == 1.0
    total_loss(terms, MODELS[name].weights(config)).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing


# ----------------------------------------------------------------------------- defaults
def test_defaults_are_the_papers_and_only_synthetic_turns_the_aids_on():
    assert (CGSTVGConfig().cell_attention, CGSTVGConfig().box_reference) == (False, "none")
    assert CoSTAConfig().box_reference == "none"
    for presets in (CGSTVG_PRESETS, COSTA_PRESETS):
        for name, preset in presets.items():
            assert (preset.get("box_reference", "none") != "none") == (name == "synthetic")
    assert CGSTVG_PRESETS["synthetic"]["cell_attention"]
    with pytest.raises(InputError) as err:
        CoSTAConfig(box_reference="centre").validate()
    assert err.value.field == "box_reference"


@pytest.mark.parametrize("build", [cgstvg, costa])
def test_the_aids_add_no_parameter_and_off_change_no_output(build):
    # Same seed, same weights with or without the aids: an aided run starts where a plain one does.
    plain = build(seed=3)
    aided = build(seed=3, box_reference="attention")
    assert all(
        torch.equal(a, b)
        for a, b in zip(plain.state_dict().values(), aided.state_dict().values(), strict=True)
    )
    with torch.no_grad():
        out = plain(batch())
        if build is cgstvg:  # the maps alone (for loss_att) leave every output as it was
            assert "s2d_attention" not in out
            maps = build(seed=3, cell_attention=True)(batch())
            assert set(maps) - set(out) == {"s2d_attention"}
            for key, value in out.items():
                torch.testing.assert_close(maps[key], value, atol=1e-6, rtol=1e-6)
        else:  # the paper's boxes: each layer moves the detached anchor, DAB-DETR
            cells = out["spatial_attention"]
            torch.testing.assert_close(
                out["s2d_attention"][:, -1], cells / cells.sum((-2, -1), keepdim=True)
            )
        assert not torch.allclose(aided(batch())["pred_boxes"], out["pred_boxes"])


def test_costa_visual_pos_in_values_is_the_position_added_to_the_cells():
    # The encoder with the option is the encoder without it fed cells + 2-D sine position.
    torch.manual_seed(4)
    plain = SpaceTimeFusionEncoder(D, 4, 1, 48, 0.0)
    with_pos = SpaceTimeFusionEncoder(D, 4, 1, 48, 0.0, pos_in_values=True)
    with_pos.load_state_dict(plain.state_dict())
    fv, text = torch.randn(B, TS, H * W, D), torch.randn(B, L, D)
    valid, text_mask = batch(padded=True)["image_mask"], torch.ones(B, L, dtype=torch.bool)
    pos = sine_position_2d(valid, D).flatten(1, 2)[:, None]  # [B,1,HW,d]
    got = with_pos(fv, valid, text, text_mask)
    want = plain(fv + pos, valid, text, text_mask)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    assert not CoSTAConfig().visual_pos_in_values
    assert [n for n, p in COSTA_PRESETS.items() if p.get("visual_pos_in_values")] == ["synthetic"]


def test_loss_att_without_the_map_names_the_setting():
    net = cgstvg()  # no cell_attention, no box_reference: no s2d_attention
    inputs = batch()
    with pytest.raises(InputError) as err:
        MODELS["cgstvg"].losses(net(inputs), inputs, SimpleNamespace(loss_att=1.0))
    assert err.value.field == "loss_att"
    assert "s2d_attention" in str(err.value)
    assert "att" not in MODELS["cgstvg"].losses(net(inputs), inputs, SimpleNamespace(loss_att=0.0))
