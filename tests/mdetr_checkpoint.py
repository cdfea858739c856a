"""A fabricated MDETR checkpoint: MDETR's key names and shapes (its models/mdetr.py,
transformer.py and backbone.py, ResNet101 checkpoint trained with the contrastive-align loss),
random tensors at small sizes, and the non-tensor entries its main.py saves (``args`` as an
``argparse.Namespace``, ``optimizer``, ``epoch``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def _attention(prefix: str, d: int) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.in_proj_weight": torch.randn(3 * d, d),
        f"{prefix}.in_proj_bias": torch.randn(3 * d),
        f"{prefix}.out_proj.weight": torch.randn(d, d),
        f"{prefix}.out_proj.bias": torch.randn(d),
    }


def _linear(prefix: str, n_out: int, n_in: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": torch.randn(n_out, n_in), f"{prefix}.bias": torch.randn(n_out)}


def _norm(prefix: str, d: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": torch.randn(d), f"{prefix}.bias": torch.randn(d)}


def transformer_state(
    *,
    d: int,
    ff: int,
    c_img: int,
    c_txt: int,
    n_enc: int,
    n_dec: int,
    n_queries: int = 100,
) -> dict[str, torch.Tensor]:
    """The MDETR keys that CSDVL's static stream and box head can take, plus the class head and
    the contrastive-align projections (which it cannot)."""
    s: dict[str, torch.Tensor] = {}
    for i in range(n_enc):
        p = f"transformer.encoder.layers.{i}"
        s.update(_attention(f"{p}.self_attn", d))
        s.update(_linear(f"{p}.linear1", ff, d) | _linear(f"{p}.linear2", d, ff))
        s.update(_norm(f"{p}.norm1", d) | _norm(f"{p}.norm2", d))
    for i in range(n_dec):
        p = f"transformer.decoder.layers.{i}"
        s.update(_attention(f"{p}.self_attn", d) | _attention(f"{p}.cross_attn_image", d))
        s.update(_linear(f"{p}.linear1", ff, d) | _linear(f"{p}.linear2", d, ff))
        for n in ("norm1", "norm3", "norm4"):
            s.update(_norm(f"{p}.{n}", d))
    s.update(_norm("transformer.decoder.norm", d))
    s.update(_linear("transformer.resizer.fc", d, c_txt))
    s.update(_norm("transformer.resizer.layer_norm", d))
    s["input_proj.weight"] = torch.randn(d, c_img, 1, 1)
    s["input_proj.bias"] = torch.randn(d)
    s["query_embed.weight"] = torch.randn(n_queries, d)
    for k in range(3):
        s.update(_linear(f"bbox_embed.layers.{k}", 4 if k == 2 else d, d))
    s.update(_linear("class_embed", 256, d))
    s.update(_linear("contrastive_align_projection_image", 64, d))
    s.update(_linear("contrastive_align_projection_text", 64, d))
    return s


def backbone_stub() -> dict[str, torch.Tensor]:
    """A few ResNet keys as MDETR names them (frozen BN: no num_batches_tracked)."""
    return {
        "backbone.0.body.conv1.weight": torch.randn(4, 3, 7, 7),
        "backbone.0.body.bn1.weight": torch.randn(4),
        "backbone.0.body.bn1.bias": torch.randn(4),
        "backbone.0.body.bn1.running_mean": torch.randn(4),
        "backbone.0.body.bn1.running_var": torch.rand(4),
    }


def text_encoder_stub() -> dict[str, torch.Tensor]:
    """A few RoBERTa keys as MDETR names them (its transformers version kept position_ids)."""
    return {
        "transformer.text_encoder.embeddings.position_ids": torch.arange(514)[None],
        "transformer.text_encoder.pooler.dense.weight": torch.randn(8, 8),
        "transformer.text_encoder.pooler.dense.bias": torch.randn(8),
    }


def save_mdetr(path: Path, model: dict, model_ema: dict | None = None) -> Path:
    """Write ``{"model", "model_ema", "optimizer", "epoch", "args"}`` as MDETR's main.py does."""
    args = argparse.Namespace(
        backbone="resnet101", hidden_dim=256, num_queries=100, lr=1e-4, output_dir="out", ema=True
    )
    torch.save(
        {
            "model": model,
            "model_ema": model_ema,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
            "epoch": 39,
            "args": args,
        },
        path,
    )
    return path
