"""``--weights mdetr:PATH``: the image and text encoders take MDETR's ResNet and RoBERTa."""

from __future__ import annotations

import pytest
import torch
import torchvision
from mdetr_checkpoint import save_mdetr, transformer_state
from transformers import RobertaModel

from stvg.extract.backbones import build_image_encoder, build_text_encoder
from stvg.extract.backbones import text as text_module
from stvg.extract.backbones.text import roberta_base_config
from stvg.extract.backbones.tokenizer import build_transformers_tokenizer
from stvg.extract.backbones.weights import WeightsUnavailable, file_id, parse_weights
from stvg.extract.config import preset
from stvg.extract.runner import build_encoders


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """MDETR keys around a random ResNet18 (MDETR names and frozen-BN buffers: no
    num_batches_tracked) and a one-layer RoBERTa-base stored in fp16 (to keep the file small)."""
    torch.manual_seed(5)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    body = {
        f"backbone.0.body.{k}": v
        for k, v in net.state_dict().items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    roberta = RobertaModel(roberta_base_config(1), add_pooling_layer=False)
    text = {f"transformer.text_encoder.{k}": v.half() for k, v in roberta.state_dict().items()}
    text["transformer.text_encoder.embeddings.position_ids"] = torch.arange(514)[None]
    text["transformer.text_encoder.pooler.dense.weight"] = torch.randn(768, 768).half()
    model = {
        **body,
        **text,
        **transformer_state(d=8, ff=8, c_img=512, c_txt=768, n_enc=1, n_dec=1),
    }
    path = tmp_path_factory.mktemp("mdetr") / "pretrained_resnet101_checkpoint.pth"
    return save_mdetr(path, model), body, text


def test_parse_weights_mdetr(checkpoint, tmp_path):
    path = checkpoint[0]
    choice = parse_weights(f"mdetr:{path}")
    assert (choice.kind, choice.path) == ("mdetr", path)
    with pytest.raises(WeightsUnavailable):
        parse_weights(f"mdetr:{tmp_path}")  # a folder is not the checkpoint file


def test_image_encoder_takes_mdetr_backbone(checkpoint):
    path, body, _ = checkpoint
    enc = build_image_encoder("resnet18", "layer3", weights=f"mdetr:{path}")
    state = enc.body.state_dict()
    compared = 0
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(value, body[f"backbone.0.body.{key}"]), key
        compared += 1
    assert compared == len([k for k in body if ".layer4." not in k and "body.layer4" not in k])
    assert enc.spec["weights"] == "mdetr:" + file_id(path)[5:]


def test_text_encoder_takes_mdetr_roberta(checkpoint, monkeypatch):
    path, _, text = checkpoint
    monkeypatch.setattr(text_module, "roberta_tokenizer", build_transformers_tokenizer)
    enc = build_text_encoder(f"mdetr:{path}", layers=1)
    state = enc.model.state_dict()
    for key, value in state.items():
        assert torch.equal(value, text[f"transformer.text_encoder.{key}"].float()), key
    assert enc.spec["weights"].startswith("mdetr:")
    states, mask = enc.encode(["the man in red"])
    assert states.shape[-1] == 768 and bool(mask.all())


def test_extract_builds_the_video_encoder_pretrained(checkpoint, monkeypatch):
    """MDETR holds no video encoder: the runner asks for the pretrained one."""
    path = checkpoint[0]
    asked = {}

    def fake_video(**kwargs):
        asked.update(kwargs)
        return "video"

    monkeypatch.setattr("stvg.extract.backbones.build_video_encoder", fake_video)
    monkeypatch.setattr(text_module, "roberta_tokenizer", build_transformers_tokenizer)
    config = preset(
        "normalized",
        weights=f"mdetr:{path}",
        image_backbone="resnet18",
        image_layer="layer3",
        text_layers=1,
    )
    encoders = build_encoders(config)
    assert asked["weights"] == "pretrained"
    assert encoders.image.spec["weights"].startswith("mdetr:")


def test_video_encoder_refuses_an_mdetr_file(checkpoint):
    from stvg.extract.backbones import build_video_encoder

    with pytest.raises(WeightsUnavailable, match="no video encoder"):
        build_video_encoder("framediff_resnet18", weights=f"mdetr:{checkpoint[0]}")
