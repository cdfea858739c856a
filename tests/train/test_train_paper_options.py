"""Training options for reproducing the paper: --init mdetr:PATH, aux_loss, the lr schedules,
global_batch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from mdetr_checkpoint import save_mdetr, transformer_state
from tiny_settings import TINY_TRAIN

from stvg.errors import InputError
from stvg.models import CSDVLConfig, build_model
from stvg.train import run as train
from stvg.train.config import TrainConfig, resolve
from stvg.train.losses import aux_box_losses
from stvg.train.state import lr_factor


@pytest.fixture
def features(tiny_train_features) -> Path:
    return tiny_train_features  # read-only, shared by the session


def _lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_init_mdetr_lands_in_the_run_and_its_ema(features, tmp_path):
    torch.manual_seed(11)
    # TINY_TRAIN: d 32, ff 32, one encoder and one decoder layer; synthetic pixels: 192 ch
    ck = transformer_state(d=32, ff=32, c_img=192, c_txt=768, n_enc=1, n_dec=1)
    path = save_mdetr(tmp_path / "mdetr.pth", ck)
    config = resolve(
        "synthetic",
        [*TINY_TRAIN, "max_steps=1", "lr=0", "validate=false", "model.decoder_norm=true",
         f"init=mdetr:{path}"],
    )  # fmt: skip
    train(features, tmp_path / "run", config, progress=False)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    model, ema = saved["model"], saved["ema"]
    pairs = {
        "static.image_proj.weight": ck["input_proj.weight"][:, :, 0, 0],
        "static.query_embed": ck["query_embed.weight"][0],
        "static.text_proj.0.weight": ck["transformer.resizer.fc.weight"],
        "static.decoder.0.norm2.bias": ck["transformer.decoder.layers.0.norm3.bias"],
        "static.encoder.0.ffn.norm.weight": ck["transformer.encoder.layers.0.norm2.weight"],
        "decoder_norm.weight": ck["transformer.decoder.norm.weight"],
        "box_head.mlp.layers.2.bias": ck["bbox_embed.layers.2.bias"],
    }
    for key, value in pairs.items():
        assert torch.equal(model[key], value), key  # lr 0: one step changes nothing
        assert torch.allclose(ema[key], value, atol=1e-6), key  # the EMA starts from them


def test_init_is_refused_when_it_does_not_fit(features, tmp_path):
    ck = transformer_state(d=16, ff=32, c_img=192, c_txt=768, n_enc=1, n_dec=1)
    path = save_mdetr(tmp_path / "mdetr.pth", ck)
    config = resolve("synthetic", [*TINY_TRAIN, "max_steps=1", f"init=mdetr:{path}"])
    with pytest.raises(
        InputError, match=r"static\.encoder\.0\.self_attn\.in_proj_weight \(96, 32\)"
    ):
        train(features, tmp_path / "run", config, progress=False)


def test_unknown_init_scheme_refused():
    with pytest.raises(InputError):
        resolve("vidstg", ["init=detr:x.pth"])


def tiny_cfg(n_layers):
    return CSDVLConfig(
        d_model=16, n_heads=2, n_layers=n_layers, n_encoder_layers=1, dim_feedforward=16,
        dropout=0.0, image_channels=8, text_channels=8, motion_channels=8, d_map=8,
        map_layers=1, map_kernel=3, decoder_norm=True, box_reference="attention",
    )  # fmt: skip


def test_aux_boxes_are_what_a_shallower_model_predicts():
    """aux_boxes[:, 0] of a 2-layer model = pred_boxes of the same weights cut to 1 layer."""
    torch.manual_seed(0)
    deep = build_model(tiny_cfg(2)).eval()
    shallow = build_model(tiny_cfg(1)).eval()
    shallow.load_state_dict(
        {k: v for k, v in deep.state_dict().items() if k in shallow.state_dict()}
    )
    batch = {
        "image": torch.randn(2, 4, 8, 3, 5),
        "text": torch.randn(2, 6, 8),
        "text_mask": torch.ones(2, 6, dtype=torch.bool),
        "motion": torch.randn(2, 4, 8, 3, 3),
    }
    with torch.no_grad():
        out = deep(batch, aux=True)
        want = shallow(batch)["pred_boxes"]
        assert "aux_boxes" not in deep(batch)
    assert out["aux_boxes"].shape == (2, 1, 4, 4)
    assert torch.allclose(out["aux_boxes"][:, 0], want, atol=1e-6)


def test_aux_box_losses_by_hand():
    gt = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]]])  # [1, 2, 4]
    mask = torch.tensor([[True, False]])
    aux = torch.tensor([[[[0.6, 0.5, 0.2, 0.2], [0, 0, 0, 0]],  # layer 0: shifted 0.1 in x
                         [[0.5, 0.5, 0.2, 0.2], [0, 0, 0, 0]]]])  # layer 1: exact  # fmt: skip
    terms = aux_box_losses(aux, {"boxes": gt, "box_mask": mask})
    assert math.isclose(float(terms["aux_l1"]), 0.1, abs_tol=1e-6)
    # layer 0: boxes [0.5,0.4,0.7,0.6] and [0.4,0.4,0.6,0.6]: inter 0.02, union 0.06, hull 0.06
    assert math.isclose(float(terms["aux_giou"]), 1 - 0.02 / 0.06, abs_tol=1e-6)


def test_aux_loss_trains_and_logs_its_terms(features, tmp_path):
    config = resolve("synthetic", [*TINY_TRAIN, "model.n_layers=2", "max_steps=2", "aux_loss=true",
                                   "validate=false"])  # fmt: skip
    train(features, tmp_path / "run", config, progress=False)
    line = _lines(tmp_path / "run")[0]
    assert line["aux_l1"] > 0 and line["aux_giou"] > 0
    assert config.loss_weights()["aux_l1"] == config.loss_l1


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # warmup 4 of 10 steps: (s + 1) / 4, then p = (s - 4) / 6
        ("constant", [0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1, 1]),
        ("linear", [0.25, 0.5, 0.75, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]),
        ("cosine", [0.25, 0.5, 0.75, 1, 1, 0.9330127, 0.75, 0.5, 0.25, 0.0669873]),
    ],
)
def test_lr_schedule_values_by_hand(schedule, expected):
    factor = lr_factor(TrainConfig(lr_schedule=schedule, warmup_steps=4), 10)
    assert [round(factor(s), 6) for s in range(10)] == [round(x, 6) for x in expected]


def test_lr_schedule_in_a_run(features, tmp_path):
    config = resolve("synthetic", [*TINY_TRAIN, "max_steps=6", "lr=1.0", "lr_schedule=linear",
                                   "warmup_steps=2", "validate=false"])  # fmt: skip
    train(features, tmp_path / "run", config, progress=False)
    lrs = [line["lr"] for line in _lines(tmp_path / "run")]
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


def test_unknown_schedule_refused():
    with pytest.raises(InputError, match="lr_schedule"):
        resolve("vidstg", ["lr_schedule=cosin"])


def test_global_batch_divides_by_world(features, tmp_path):
    assert TrainConfig(batch_size=8).per_process_batch(4) == 8
    assert TrainConfig(global_batch=8).per_process_batch(4) == 2
    with pytest.raises(InputError, match="global_batch"):
        TrainConfig(global_batch=6).per_process_batch(4)
    # one process: 4 training queries in batches of global_batch=4 -> one step per epoch
    config = resolve("synthetic", [*TINY_TRAIN, "epochs=2", "batch_size=1", "global_batch=4",
                                   "validate=false"])  # fmt: skip
    assert train(features, tmp_path / "run", config, progress=False)["steps"] == 2


def test_cli_init_option(features, tmp_path):
    from typer.testing import CliRunner

    from stvg.cli import app

    torch.manual_seed(12)
    ck = transformer_state(d=32, ff=32, c_img=192, c_txt=768, n_enc=1, n_dec=1)
    path = save_mdetr(tmp_path / "mdetr.pth", ck)
    base = ["train", "--features", str(features), "--preset", "synthetic", "--max-steps", "1"]
    sets = [x for item in [*TINY_TRAIN, "validate=false", "lr=0"] for x in ("--set", item)]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), *sets, "--init", "x.pth"])
    assert result.exit_code == 2 and "mdetr:PATH" in result.output
    missing = f"mdetr:{tmp_path / 'missing.pth'}"
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), *sets, "--init", missing])
    assert result.exit_code == 2 and "no such MDETR checkpoint" in result.output
    result = runner.invoke(
        app, [*base, "--out", str(tmp_path / "c"), *sets, "--init", f"mdetr:{path}"]
    )
    assert result.exit_code == 0, result.output
    saved = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)
    assert torch.equal(saved["model"]["static.query_embed"], ck["query_embed.weight"][0])
    assert json.loads((tmp_path / "c" / "config.json").read_text())["init"] == f"mdetr:{path}"
