"""train_config optimizers → Keras optimizers (SPEC §2.2).

Hyper-parameters follow PyTorch's definitions: epsilon and the Adagrad
initial accumulator are passed through instead of Keras' defaults.
"""

from __future__ import annotations

import keras

from easymatch.errors import ConfigError
from easymatch.training.learning_rate import ExponentialDecayLR, ManualStepLR


def learning_rate(optimizer_config, base_rate: float, field: str):
    """The `learning_rate` oneof → a float or a Keras schedule."""
    kind = optimizer_config.WhichOneof("learning_rate")
    if kind in (None, "constant_learning_rate"):
        return base_rate
    schedule = getattr(optimizer_config, kind)
    if getattr(schedule, "by_epoch", False):
        raise ConfigError(
            f"{field}.{kind}.by_epoch: epoch-based schedules are not "
            "supported yet; give sizes in steps"
        )
    if kind == "exponential_decay_learning_rate":
        return ExponentialDecayLR(
            base_rate,
            decay_size=schedule.decay_size,
            decay_factor=schedule.decay_factor,
            staircase=schedule.staircase,
            warmup_learning_rate=schedule.warmup_learning_rate,
            warmup_size=schedule.warmup_size,
            min_learning_rate=schedule.min_learning_rate,
        )
    if kind == "manual_step_learning_rate":
        return ManualStepLR(
            base_rate,
            schedule_sizes=list(schedule.schedule_sizes),
            learning_rates=list(schedule.learning_rates),
            warmup=schedule.warmup,
        )
    raise ConfigError(f"{field}.{kind}: not supported yet")


def optimizer_params(optimizer_config, field: str) -> tuple[str, object, str]:
    """(kind, params message, config path) of the `optimizer` oneof."""
    kind = optimizer_config.WhichOneof("optimizer")
    if kind is None:
        raise ConfigError(f"{field}: no optimizer set")
    params = getattr(optimizer_config, kind)
    path = f"{field}.{kind}"
    # TorchEasyRec's Fused* messages clip per optimizer; ours may lack it.
    if getattr(params, "gradient_clipping", False):
        raise ConfigError(
            f"{path}.gradient_clipping: not supported yet; use "
            "train_config.grad_clipping"
        )
    return kind, params, path


def build_optimizer(optimizer_config, field: str) -> keras.optimizers.Optimizer:
    """A SparseOptimizer or DenseOptimizer message → a Keras optimizer."""
    kind, params, path = optimizer_params(optimizer_config, field)
    weight_decay = getattr(params, "weight_decay", 0.0)
    if weight_decay and kind != "adamw_optimizer":
        # PyTorch's weight_decay on these is an L2 term in the gradient,
        # Keras' is decoupled: refusing beats silently changing the model.
        raise ConfigError(
            f"{path}.weight_decay: coupled (L2) weight decay is not "
            "supported; use adamw_optimizer for decoupled decay"
        )
    if getattr(params, "dampening", 0.0):
        raise ConfigError(f"{path}.dampening: not supported yet")
    rate = learning_rate(optimizer_config, params.lr, field)
    if kind == "sgd_optimizer":
        return keras.optimizers.SGD(
            learning_rate=rate,
            momentum=getattr(params, "momentum", 0.0),
            nesterov=getattr(params, "nesterov", False),
        )
    if kind == "adagrad_optimizer":
        return keras.optimizers.Adagrad(
            learning_rate=rate,
            initial_accumulator_value=params.initial_accumulator_value,
            epsilon=getattr(params, "eps", 1e-10),
        )
    if kind in ("adam_optimizer", "adamw_optimizer"):
        kwargs = dict(
            learning_rate=rate,
            beta_1=params.beta1,
            beta_2=params.beta2,
            epsilon=getattr(params, "eps", 1e-8),
            amsgrad=getattr(params, "amsgrad", False),
        )
        if kind == "adamw_optimizer":
            return keras.optimizers.AdamW(weight_decay=weight_decay, **kwargs)
        return keras.optimizers.Adam(**kwargs)
    raise ConfigError(f"{path}: not supported yet")
