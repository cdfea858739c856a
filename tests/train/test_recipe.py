"""The recipe's pieces: one weighted loss with the paper's default weights in one place, the
checkpoint payloads, and setup() building what run() trains."""

from __future__ import annotations

import pytest
import torch
from tiny_settings import TINY_TRAIN

from stvg.errors import InputError
from stvg.train.config import TrainConfig, resolve
from stvg.train.losses import DEFAULT_LOSS_WEIGHTS, total_loss
from stvg.train.state import checkpoint, setup
from stvg.train.trainer import train_loader, train_step


def test_total_loss_weighs_by_hand():
    terms = {k: torch.tensor(v) for k, v in {"l1": 1.0, "giou": 2.0, "tg": 3.0, "ta": 4.0}.items()}
    assert total_loss(terms).item() == 5 * 1 + 2 * 2 + 5 * 3 + 1 * 4  # 28, the paper's 5/2/5/1
    terms["att"] = torch.tensor(10.0)
    assert total_loss(terms).item() == 28  # att is not a default term
    # a zero weight and a weight without a term add nothing
    assert total_loss(terms, {"tg": 2.0, "att": 0.0, "missing": 7.0}).item() == 6
    assert total_loss(terms, TrainConfig(loss_att=0.5).loss_weights()).item() == 28 + 5


def test_the_config_defaults_are_the_loss_modules():
    config = TrainConfig()
    assert (config.loss_l1, config.loss_giou, config.loss_tg, config.loss_ta) == (5, 2, 5, 1)
    assert {k: v for k, v in config.loss_weights().items() if v} == DEFAULT_LOSS_WEIGHTS


@pytest.fixture
def features(tiny_train_features):
    return tiny_train_features  # read-only, shared by the session


def test_setup_step_and_checkpoint_payloads(features, tmp_path):
    config = resolve("synthetic", [*TINY_TRAIN, "max_steps=3", "lr_schedule=constant"])
    state = setup(features, tmp_path / "run", config)
    assert list((tmp_path / "run").iterdir()) == []  # setup writes no file
    # 2 train videos x 2 queries, batch 2: 2 steps an epoch; max_steps wins over epochs
    assert (state.steps_per_epoch, state.total_steps, state.step) == (2, 3, 0)
    assert state.val_set is None  # no val split in this store
    batch = next(iter(train_loader(state)))
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    values = train_step(state, batch)
    assert state.step == 1 and state.scheduler.last_epoch == 1
    assert set(values) == {"loss", "l1", "giou", "tg", "ta", "att", "lr"}
    assert values["lr"] == pytest.approx(1e-3 * 1 / 50)  # the synthetic preset's warm-up
    total = sum(values[k] * w for k, w in {"l1": 5, "giou": 2, "tg": 5, "ta": 1, "att": 1}.items())
    assert values["loss"] == pytest.approx(total, rel=1e-6)
    moved = [k for k, v in state.model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved  # the optimizer stepped

    full = checkpoint(state)
    assert list(full) == [
        "model", "ema", "optimizer", "scheduler", "step", "best", "rng", "config",
        "model_config", "features",
    ]  # fmt: skip
    assert full["step"] == 1 and full["best"] == -1.0 and full["config"] == config.to_json()
    best = checkpoint(state, best=True, val={"all": {"m_vIoU": 0.25}})
    assert list(best) == ["ema", "step", "val", "config", "model_config", "features"]
    assert list(checkpoint(state, best=True)) == [
        "ema", "step", "config", "model_config", "features"
    ]  # fmt: skip
    assert best["ema"] is state.ema.state and best["features"] == state.features != {}

    with pytest.raises(InputError, match="not empty"):
        (tmp_path / "run" / "note.txt").write_text("x")
        setup(features, tmp_path / "run", config)
