"""MDETR initialization: every mapped tensor lands where it should, mismatches are refused by
name, unmapped keys are listed exactly, and the file is read without arbitrary unpickling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mdetr_checkpoint import backbone_stub, save_mdetr, text_encoder_stub, transformer_state

from stvg.errors import InputError
from stvg.models import CSDVLConfig, build_model
from stvg.models.mdetr import init_from_mdetr, initialize, read_mdetr_checkpoint

D, FF, C_IMG, C_TXT = 32, 48, 40, 24


def small_model(**overrides):
    values = dict(
        d_model=D,
        n_heads=4,
        n_layers=2,
        n_encoder_layers=2,
        dim_feedforward=FF,
        dropout=0.0,
        image_channels=C_IMG,
        text_channels=C_TXT,
        motion_channels=12,
        d_map=16,
        map_layers=1,
        map_kernel=3,
    )
    values.update(overrides)
    return build_model(CSDVLConfig(**values)).eval()


def state(n_enc=2, n_dec=2, **kw):
    torch.manual_seed(7)
    return transformer_state(d=D, ff=FF, c_img=C_IMG, c_txt=C_TXT, n_enc=n_enc, n_dec=n_dec, **kw)


def expected_pairs(model, ck, n_enc, n_dec, decoder_norm):
    """(our tensor, the checkpoint tensor it must equal), written from the modules' attributes."""
    s = model.static
    pairs = [
        (s.image_proj.weight, ck["input_proj.weight"][:, :, 0, 0]),
        (s.image_proj.bias, ck["input_proj.bias"]),
        (s.text_proj[0].weight, ck["transformer.resizer.fc.weight"]),
        (s.text_proj[0].bias, ck["transformer.resizer.fc.bias"]),
        (s.text_proj[1].weight, ck["transformer.resizer.layer_norm.weight"]),
        (s.text_proj[1].bias, ck["transformer.resizer.layer_norm.bias"]),
        (s.query_embed, ck["query_embed.weight"][0]),
    ]
    for k in range(3):
        for p in ("weight", "bias"):
            pairs.append(
                (getattr(model.box_head.mlp.layers[k], p), ck[f"bbox_embed.layers.{k}.{p}"])
            )
    attn = ("in_proj_weight", "in_proj_bias")
    for i in range(n_enc):
        layer, pre = s.encoder[i], f"transformer.encoder.layers.{i}"
        for a in attn:
            pairs.append((getattr(layer.self_attn, a), ck[f"{pre}.self_attn.{a}"]))
        pairs.append((layer.self_attn.out_proj.weight, ck[f"{pre}.self_attn.out_proj.weight"]))
        pairs.append((layer.norm.weight, ck[f"{pre}.norm1.weight"]))
        pairs.append((layer.ffn.norm.bias, ck[f"{pre}.norm2.bias"]))
        pairs.append((layer.ffn.linear1.weight, ck[f"{pre}.linear1.weight"]))
        pairs.append((layer.ffn.linear2.bias, ck[f"{pre}.linear2.bias"]))
    for i in range(n_dec):
        layer, pre = s.decoder[i], f"transformer.decoder.layers.{i}"
        for a in attn:
            pairs.append((getattr(layer.self_attn, a), ck[f"{pre}.self_attn.{a}"]))
            pairs.append((getattr(layer.cross_attn, a), ck[f"{pre}.cross_attn_image.{a}"]))
        pairs.append((layer.cross_attn.out_proj.bias, ck[f"{pre}.cross_attn_image.out_proj.bias"]))
        pairs.append((layer.norm1.weight, ck[f"{pre}.norm1.weight"]))
        pairs.append((layer.norm2.weight, ck[f"{pre}.norm3.weight"]))
        pairs.append((layer.ffn.norm.weight, ck[f"{pre}.norm4.weight"]))
        pairs.append((layer.ffn.linear2.weight, ck[f"{pre}.linear2.weight"]))
    if decoder_norm:
        pairs.append((model.decoder_norm.weight, ck["transformer.decoder.norm.weight"]))
        pairs.append((model.decoder_norm.bias, ck["transformer.decoder.norm.bias"]))
    return pairs


OTHER = sorted(
    [*backbone_stub(), *text_encoder_stub()]
    + [f"{p}.{w}" for p in ("class_embed", "contrastive_align_projection_image",
                            "contrastive_align_projection_text") for w in ("weight", "bias")]
)  # fmt: skip


def test_every_mapped_tensor_lands_where_it_should(tmp_path):
    ck = {**state(), **backbone_stub(), **text_encoder_stub()}
    path = save_mdetr(tmp_path / "mdetr.pth", ck)
    model = small_model(decoder_norm=True, query_as_position=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_mdetr(model, path)
    pairs = expected_pairs(model, ck, 2, 2, decoder_norm=True)
    for ours, theirs in pairs:
        assert torch.equal(ours.detach(), theirs)
    assert report.source == "model"
    assert report.unmapped == OTHER  # exactly the keys with no place in the model
    assert report.not_initialized == []
    # every tensor of the static stream, box head and decoder norm was loaded; nothing else moved
    loaded = set(report.loaded)
    # encoder 2 x 12, decoder 2 x 18, decoder norm 2, box MLP 6, query 1, input proj 2, resizer 4
    assert len(loaded) == 2 * 12 + 2 * 18 + 2 + 6 + 1 + 2 + 4
    for key, value in model.state_dict().items():
        if key not in loaded:
            assert torch.equal(value, before[key]), key


def test_decoder_norm_and_extra_layers_are_listed_as_unmapped(tmp_path):
    ck = {**state(n_enc=3, n_dec=3)}
    path = save_mdetr(tmp_path / "mdetr.pth", ck)
    model = small_model()  # no decoder_norm, 2 + 2 layers
    report = init_from_mdetr(model, path)
    for ours, theirs in expected_pairs(model, ck, 2, 2, decoder_norm=False):
        assert torch.equal(ours.detach(), theirs)
    extra = sorted(
        k
        for k in ck
        if k.startswith(("transformer.encoder.layers.2.", "transformer.decoder.layers.2."))
    )
    assert report.unmapped == sorted(
        [*extra, "transformer.decoder.norm.bias", "transformer.decoder.norm.weight"]
        + [k for k in OTHER if not k.startswith(("backbone", "transformer.text_encoder"))]
    )


def test_fewer_mdetr_layers_leave_the_rest_at_their_init(tmp_path):
    path = save_mdetr(tmp_path / "mdetr.pth", state(n_enc=1, n_dec=2))
    model = small_model()
    report = init_from_mdetr(model, path)
    assert report.not_initialized == sorted(
        k for k in model.state_dict() if k.startswith("static.encoder.1.")
    )


def test_ema_weights_are_preferred(tmp_path):
    ck, ema = state(), state()
    ema = {k: v + 1.0 for k, v in ema.items()}
    path = save_mdetr(tmp_path / "mdetr.pth", ck, model_ema=ema)
    model = small_model()
    report = init_from_mdetr(model, path)
    assert report.source == "model_ema"
    assert torch.equal(model.static.image_proj.bias.detach(), ema["input_proj.bias"])


def test_shape_mismatch_is_refused_by_name_and_nothing_changes(tmp_path):
    path = save_mdetr(tmp_path / "mdetr.pth", state())
    model = small_model(image_channels=C_IMG + 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError) as info:
        init_from_mdetr(model, path)
    text = str(info.value)
    assert (
        f"input_proj.weight ({D}, {C_IMG}, 1, 1) -> static.image_proj.weight ({D}, {C_IMG + 1})"
        in text
    )
    assert "mdetr.pth" in text
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


class _Boom:
    def __reduce__(self):
        return (open, ("/nonexistent-dir/should-not-run", "w"))


def test_arbitrary_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": state(), "args": _Boom()}, path)
    with pytest.raises(InputError) as info:
        read_mdetr_checkpoint(path)
    assert "re-save" in str(info.value)


def test_init_value_scheme(tmp_path):
    with pytest.raises(InputError):
        initialize(small_model(), f"detr:{tmp_path}/x.pth")
    with pytest.raises(InputError, match="no such MDETR checkpoint"):
        initialize(small_model(), f"mdetr:{tmp_path}/missing.pth")


def mdetr_encoder_layer(src, pos, ck, pre, heads):
    """MDETR's post-norm encoder layer (forward_post), from the checkpoint tensors. [L, d]."""
    q = src + pos
    out = mha(q, q, src, ck, f"{pre}.self_attn", heads)
    src = F.layer_norm(src + out, (D,), ck[f"{pre}.norm1.weight"], ck[f"{pre}.norm1.bias"])
    ff = F.linear(F.relu(F.linear(src, ck[f"{pre}.linear1.weight"], ck[f"{pre}.linear1.bias"])),
                  ck[f"{pre}.linear2.weight"], ck[f"{pre}.linear2.bias"])  # fmt: skip
    return F.layer_norm(src + ff, (D,), ck[f"{pre}.norm2.weight"], ck[f"{pre}.norm2.bias"])


def mha(q, k, v, ck, pre, heads):
    """Multi-head attention written out: [Lq, d]."""
    w, b = ck[f"{pre}.in_proj_weight"], ck[f"{pre}.in_proj_bias"]
    qq, kk, vv = (F.linear(x, w[i * D : (i + 1) * D], b[i * D : (i + 1) * D])
                  for i, x in enumerate((q, k, v)))  # fmt: skip
    dh = D // heads
    outs = []
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        a = torch.softmax(qq[:, sl] @ kk[:, sl].T / dh**0.5, dim=-1)
        outs.append(a @ vv[:, sl])
    return F.linear(torch.cat(outs, -1), ck[f"{pre}.out_proj.weight"], ck[f"{pre}.out_proj.bias"])


def test_mapped_layers_compute_what_mdetr_computes(tmp_path):
    """With MDETR's layout switches, encoder and decoder layers match MDETR's formulas."""
    ck = state()
    path = save_mdetr(tmp_path / "mdetr.pth", ck)
    model = small_model(decoder_norm=True, query_as_position=True)
    init_from_mdetr(model, path)
    torch.manual_seed(3)
    src, pos = torch.randn(9, D), torch.randn(9, D)
    with torch.no_grad():
        ours = model.static.encoder[0](src[None], pos[None], None)[0]
    want = mdetr_encoder_layer(src, pos, ck, "transformer.encoder.layers.0", 4)
    assert torch.allclose(ours, want, atol=1e-4)

    # decoder layer 0 on 3 queries (frames) with zero content and the query vector as position
    memory = torch.randn(9, D)
    query_pos = ck["query_embed.weight"][0].expand(3, D) + torch.randn(3, D)
    tgt = torch.zeros(3, D)
    pre = "transformer.decoder.layers.0"
    q = tgt + query_pos
    x = F.layer_norm(tgt + mha(q, q, tgt, ck, f"{pre}.self_attn", 4), (D,),
                     ck[f"{pre}.norm1.weight"], ck[f"{pre}.norm1.bias"])  # fmt: skip
    x = F.layer_norm(x + mha(x + query_pos, memory + pos, memory, ck, f"{pre}.cross_attn_image", 4),
                     (D,), ck[f"{pre}.norm3.weight"], ck[f"{pre}.norm3.bias"])  # fmt: skip
    ff = F.linear(F.relu(F.linear(x, ck[f"{pre}.linear1.weight"], ck[f"{pre}.linear1.bias"])),
                  ck[f"{pre}.linear2.weight"], ck[f"{pre}.linear2.bias"])  # fmt: skip
    want = F.layer_norm(x + ff, (D,), ck[f"{pre}.norm4.weight"], ck[f"{pre}.norm4.bias"])
    with torch.no_grad():
        start = model.static.initial_queries(1, 3)
        assert torch.equal(start, torch.zeros(1, 3, D))
        ours, _ = model.static.decoder[0](
            start,
            query_pos,
            memory[None].expand(3, 9, D),
            pos[None].expand(3, 9, D),
            None,
            9,
            1.0,
        )
    assert torch.allclose(ours[0], want, atol=1e-4)


def test_paper_size_model_takes_every_tensor_of_mdetr_sizes(tmp_path):
    """MDETR's ResNet101 checkpoint sizes (hidden 256, FFN 2048, 6 + 6 layers, 100 queries,
    C5 2048, RoBERTa 768) fit the vidstg preset's model with nothing left at random init."""
    torch.manual_seed(0)
    ck = transformer_state(d=256, ff=2048, c_img=2048, c_txt=768, n_enc=6, n_dec=6)
    path = save_mdetr(tmp_path / "mdetr.pth", ck)
    cfg = CSDVLConfig.from_preset("vidstg", decoder_norm=True, query_as_position=True)
    model = build_model(cfg)
    report = init_from_mdetr(model, path)
    assert report.not_initialized == []
    assert report.unmapped == [
        k for k in OTHER if not k.startswith(("backbone", "transformer.text"))
    ]
    assert torch.equal(model.static.query_embed.detach(), ck["query_embed.weight"][0])
