"""The training config: validation, overrides, closest-key suggestions, the LR schedule."""

from __future__ import annotations

import itertools
import math

import pytest

from wallwm_core.config_loading import ConfigError
from wallwm_core.training.config import (
    OptimConfig,
    apply_overrides,
    load_train_config,
    shipped_train_config,
    train_config_from_dict,
    train_config_to_dict,
)

MINIMAL = {"model": "tiny", "run_dir": "runs/x", "data": {"paths": ["demos"]}}


def test_round_trip_and_overrides() -> None:
    config = load_train_config(
        shipped_train_config("train_cpu"),
        ["optim.lr=3e-4", "data.balance_alpha=0", "data.paths=[a, b]", "runtime.compile=true"],
    )
    assert config.optim.lr == 3e-4 and isinstance(config.optim.lr, float)
    assert config.data.balance_alpha == 0.0 and config.data.paths == ("a", "b")
    assert config.runtime.compile is True
    assert train_config_from_dict(train_config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"optim": {"lrr": 1}}, "'optim.lrr'; did you mean 'optim.lr'"),
        ({"optim": {"learning_rate": 1}}, "did you mean 'optim.lr'"),
        ({"trian": {}}, "'trian'; did you mean 'train'"),
        ({"eval": {"sampler": {"video_step": 2}}}, "did you mean 'eval.sampler.video_steps'"),
        ({"data": {"paths": ["d"], "balance_alpa": 1}}, "did you mean 'data.balance_alpha'"),
    ],
)
def test_unknown_keys_name_the_closest(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        train_config_from_dict({**MINIMAL, **data})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"batch_size": 6, "grad_accum_steps": 4}}, "divisible"),
        ({"optim": {"optimizer": "sgd"}}, "optim.optimizer"),
        ({"optim": {"ema_decay": 1.0}}, "ema_decay"),
        ({"runtime": {"parallel": "fsdp2"}}, "use optim.optimizer=adamw"),
        ({"runtime": {"threads": -1}}, "runtime.threads"),
        ({"data": {"paths": []}}, "data.paths"),
        ({"data": {"paths": ["d"], "window_mode": "sliding"}}, "data.window_mode"),
    ],
)
def test_invalid_values_are_named(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train_config_from_dict({**MINIMAL, **data})


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"model": "tiny"}, ["model.name=x"])
    with pytest.raises(ConfigError, match="unknown training config 'train_cpux'"):
        load_train_config("train_cpux")


def test_learning_rate_warmup_then_cosine() -> None:
    optim = OptimConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    rates = [optim.learning_rate(step, 110) for step in range(110)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert optim.learning_rate(1000, 110) == pytest.approx(0.1)


def test_ema_warmup_follows_early_weights() -> None:
    import torch

    from wallwm_core.training.ema import EMA

    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.999)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.999
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.shadow["weight"].clone()
    ema.update(model, 0)
    # 90% of the way to the new weights after the first step (0.1% without the warm-up).
    torch.testing.assert_close(ema.shadow["weight"], before + 0.9)
