"""Mixed-precision training steps (``TrainConfig.amp``): bf16 autocast on the CPU for every
model of the zoo, fp16 refused off CUDA, and what stays float32.

Each model is a tiny one on a random store (8 frames of 8 x 3 x 4 maps, 16 clips); the step's
loss under bf16 is compared with the float32 loss of the same weights on the same batch (bf16
keeps 8 bits of mantissa, a relative error of about 2**-8 per rounding; these differ by 0.1 to
0.3 %, 2 % is allowed), and after the step every parameter, gradient and optimizer moment is
float32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stvg.bench.train import _write_random_store
from stvg.config import SettingError
from stvg.device import autocast
from stvg.errors import InputError
from stvg.features.dataset import FeatureDataset, collate
from stvg.models.zoo import MODELS, model_entry
from stvg.train.config import TrainConfig
from stvg.train.distributed import Distributed
from stvg.train.state import checkpoint, new_state
from stvg.train.trainer import train_step

TINY = {
    "csdvl": {"d_model": 32, "n_layers": 1, "n_encoder_layers": 1, "n_heads": 2,
              "dim_feedforward": 32, "d_map": 16},
    "cgstvg": {"d_model": 32, "n_layers": 2, "n_encoder_layers": 1, "n_heads": 4,
               "dim_feedforward": 32},
    "costa": {"d_model": 32, "n_encoder_layers": 1, "n_temporal_layers": 1,
              "n_spatial_layers": 1, "n_heads": 4, "dim_feedforward": 32},
}  # fmt: skip
TINY["stvgformer"] = TINY["csdvl"]
FRAMES = 8


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("amp") / "features"
    _write_random_store(root, 2, FRAMES, image=(8, 3, 4), motion=(5, 2, 2))
    data = FeatureDataset(root, "train", FRAMES, in_memory=True)
    return collate([data[0], data[1]])


def _state(model: str, amp: str, tmp: Path):
    torch.manual_seed(0)
    config = TrainConfig(model_name=model, amp=amp)
    entry = model_entry(model)
    model_config = entry.config(image_channels=8, motion_channels=5, **TINY[model]).to_dict()
    if "dropout" in model_config:
        model_config["dropout"] = 0.0  # the two steps below must see the same network
    return new_state(config, model_config, tmp, Distributed("cpu"), 1, 1)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_bf16_step_gives_the_float32_loss_and_keeps_float32_state(model, batch, tmp_path):
    full = _state(model, "off", tmp_path / "full")
    half = _state(model, "bf16", tmp_path / "half")
    for a, b in zip(full.model.parameters(), half.model.parameters(), strict=True):
        assert torch.equal(a, b)  # one seed, one network
    loss32 = train_step(full, batch)["loss"]
    loss16 = train_step(half, batch)["loss"]
    assert loss16 != loss32  # bf16 rounding took effect
    assert abs(loss16 - loss32) <= 0.02 * abs(loss32) + 1e-3
    for name, p in half.model.named_parameters():
        assert p.dtype == torch.float32, name
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all(), name
    for moments in half.optimizer.state.values():
        assert moments["exp_avg"].dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in half.ema.state.values() if v.is_floating_point())
    assert half.scaler is None and "scaler" not in checkpoint(half)


def test_outputs_reach_the_losses_in_float32():
    from stvg.train.trainer import as_float32

    half = torch.ones(2, dtype=torch.bfloat16)
    got = as_float32({"a": half, "b": [half, (half, 3)], "c": torch.ones(2, dtype=torch.long)})
    assert got["a"].dtype == got["b"][0].dtype == got["b"][1][0].dtype == torch.float32
    assert isinstance(got["b"][1], tuple) and got["b"][1][1] == 3
    assert got["c"].dtype == torch.long


def test_bf16_runs_the_matrix_products_in_bfloat16():
    linear = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert linear(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "off"):
        assert linear(x).dtype == torch.float32


def test_fp16_is_refused_off_cuda_by_name(tmp_path):
    with pytest.raises(SettingError, match="amp='fp16'.*CUDA"):
        _state("csdvl", "fp16", tmp_path)
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        autocast(torch.device("cpu"), "fp16")


def test_an_unknown_amp_is_refused_by_name():
    with pytest.raises(SettingError, match="amp"):
        TrainConfig(amp="fp8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_on_cuda_scales_the_loss_and_saves_the_scaler(batch, tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(model_name="csdvl", amp="fp16")
    model_config = model_entry("csdvl").config(image_channels=8, motion_channels=5, **TINY["csdvl"])
    state = new_state(config, model_config.to_dict(), tmp_path, Distributed("cuda"), 1, 1)
    values = train_step(state, batch)
    assert torch.isfinite(torch.tensor(values["loss"]))
    assert state.scaler is not None and "scaler" in checkpoint(state)
