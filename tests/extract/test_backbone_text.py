"""Text encoder: the exact roberta-base config, shapes and mask, offline errors, local folders."""

from __future__ import annotations

import time

import pytest
import torch

from stvg.extract.backbones import WeightsUnavailable, build_text_encoder
from stvg.extract.backbones.text import roberta_base_config
from stvg.extract.backbones.tokenizer import build_bpe_tokenizer

TEXTS = ["the red square moves left", "a man in a black jacket walks to the door and turns"]


@pytest.fixture(scope="module")
def enc():
    return build_text_encoder("random", layers=2)


def test_config_has_the_roberta_base_numbers():
    c = roberta_base_config()
    assert c.vocab_size == 50265
    assert c.hidden_size == 768
    assert c.num_hidden_layers == 12
    assert c.num_attention_heads == 12
    assert c.intermediate_size == 3072
    assert c.max_position_embeddings == 514
    assert c.type_vocab_size == 1
    assert c.layer_norm_eps == 1e-5
    assert (c.pad_token_id, c.bos_token_id, c.eos_token_id) == (1, 0, 2)
    assert c.hidden_act == "gelu"
    assert roberta_base_config(layers=3).num_hidden_layers == 3


def test_parameter_count_matches_roberta_base():
    from transformers import RobertaModel

    with torch.device("meta"):
        model = RobertaModel(roberta_base_config(), add_pooling_layer=False)
    h, v, p, f = 768, 50265, 514, 3072
    embeddings = v * h + p * h + 1 * h + 2 * h  # words, positions, token type, LayerNorm
    layer = 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    # 124,055,040: the published 124,645,632 minus the pooler (768 * 768 + 768)
    assert sum(t.numel() for t in model.parameters()) == embeddings + 12 * layer == 124_055_040


def test_states_and_mask(enc):
    states, mask = enc.encode(TEXTS)
    lengths = [len(build_bpe_tokenizer().encode(t).ids) for t in TEXTS]  # with <s> and </s>
    assert states.shape == (2, max(lengths), 768) and states.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.sum(dim=1).tolist() == lengths
    assert mask[0, : lengths[0]].all() and not mask[0, lengths[0] :].any()
    assert torch.isfinite(states).all()
    assert enc.dim == 768 and enc.spec["layers"] == 2 and enc.spec["weights"] == "random:seed0"
    assert enc.spec["tokenizer"].startswith("bpe-builtin:")
    assert not enc.training


def test_padding_does_not_change_real_tokens(enc):
    alone, _ = enc.encode(TEXTS[:1])
    batched, mask = enc.encode(TEXTS)
    n = int(mask[0].sum())
    assert torch.allclose(alone[0, :n], batched[0, :n], atol=1e-5)


def test_truncation_to_max_length(enc):
    states, mask = enc.encode([" ".join(["word"] * 50)], max_length=16)
    assert states.shape[1] == 16 and mask.all()


def test_random_build_is_deterministic(enc):
    again = build_text_encoder("random", layers=2)
    a, _ = enc.encode(TEXTS)
    b, _ = again.encode(TEXTS)
    assert torch.equal(a, b)


def test_pretrained_offline_stops_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        build_text_encoder("pretrained", layers=2)
    assert time.monotonic() - start < 5
    text = str(info.value)
    assert "roberta-base" in text and "huggingface.co" in text
    assert str(tmp_path / "hf" / "hub") in text and "HF_HOME" in text


def test_missing_or_wrong_folder(tmp_path):
    with pytest.raises(WeightsUnavailable, match="neither"):
        build_text_encoder(str(tmp_path / "missing"))
    with pytest.raises(WeightsUnavailable, match="config.json"):
        build_text_encoder(str(tmp_path))  # exists, but holds no model


def test_local_folder_loads_a_saved_model(enc, tmp_path):
    folder = tmp_path / "roberta-base"
    enc.model.save_pretrained(folder)
    enc.tokenizer.save_pretrained(folder)
    local = build_text_encoder(str(tmp_path), layers=2)  # finds the roberta-base subfolder
    assert local.spec["weights"].startswith("file:")
    a, ma = enc.encode(TEXTS)
    b, mb = local.encode(TEXTS)
    assert torch.equal(ma, mb) and torch.allclose(a, b, atol=1e-5)
