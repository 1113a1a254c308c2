"""Checks of train_config: step budget, checkpoints, optimizers."""

from __future__ import annotations

from google.protobuf.message import Message

from easymatch.config.report import Reporter
from easymatch.protos import optimizer_pb2, train_pb2

_SUMMARIES = ("loss", "learning_rate")
_CLIPPING_TYPES = ("none", "norm", "value")


def validate_train(train: train_pb2.TrainConfig, report: Reporter) -> None:
    path = "train_config"
    if train.num_steps > 0 and train.num_epochs > 0:
        report.fail(
            f"{path}.num_epochs", "set together with num_steps; set only one"
        )
    if train.num_steps == 0 and train.num_epochs == 0:
        report.fail(path, "set num_steps or num_epochs (one of them, > 0)")
    if train.save_checkpoints_steps == 0 and train.save_checkpoints_epochs == 0:
        report.fail(
            f"{path}.save_checkpoints_steps",
            "must be > 0 when save_checkpoints_epochs is not set",
        )
    for i, summary in enumerate(train.tensorboard_summaries):
        if summary not in _SUMMARIES:
            report.fail(
                f"{path}.tensorboard_summaries[{i}]",
                f'"{summary}" is not supported; use "loss" or "learning_rate"',
            )
    clip = train.grad_clipping
    clip_path = f"{path}.grad_clipping"
    if clip.clipping_type not in _CLIPPING_TYPES:
        report.fail(
            f"{clip_path}.clipping_type",
            f'"{clip.clipping_type}" is not one of "none", "norm", "value"',
        )
    if clip.clipping_type != "none" and not clip.max_gradient > 0:
        report.fail(f"{clip_path}.max_gradient", "must be > 0")
    if clip.clipping_type == "norm" and clip.norm_type != 2.0:
        report.fail(
            f"{clip_path}.norm_type",
            "only the global L2 norm (2.0) is supported yet",
        )
    if train.mixed_precision not in ("", "BF16"):
        report.fail(
            f"{path}.mixed_precision",
            f'"{train.mixed_precision}" is not supported; use "BF16" or leave '
            "it empty (FP16 needs loss scaling and has no fast CPU kernels)",
        )
    if train.gradient_accumulation_steps > 1:
        report.fail(f"{path}.gradient_accumulation_steps", "not supported yet")
    _validate_optimizer(
        f"{path}.sparse_optimizer", train.sparse_optimizer, report
    )
    _validate_optimizer(
        f"{path}.dense_optimizer", train.dense_optimizer, report
    )


def _validate_optimizer(
    path: str,
    optimizer: optimizer_pb2.SparseOptimizer | optimizer_pb2.DenseOptimizer,
    report: Reporter,
) -> None:
    kind = optimizer.WhichOneof("optimizer")
    if kind is None:
        report.fail(path, f"no optimizer set; use one of {_oneof(optimizer)}")
    if not getattr(optimizer, kind).lr > 0:
        report.fail(f"{path}.{kind}.lr", "must be > 0")
    schedule = optimizer.WhichOneof("learning_rate")
    if schedule is None:
        report.fail(
            path,
            "no learning rate schedule set; use one of "
            + _oneof(optimizer, "learning_rate"),
        )
    lr_path = f"{path}.{schedule}"
    if schedule == "exponential_decay_learning_rate":
        decay = optimizer.exponential_decay_learning_rate
        if decay.decay_size == 0:
            report.fail(f"{lr_path}.decay_size", "must be > 0")
        if not 0 < decay.decay_factor <= 1:
            report.fail(f"{lr_path}.decay_factor", "must be in (0, 1]")
    elif schedule == "manual_step_learning_rate":
        manual = optimizer.manual_step_learning_rate
        sizes = list(manual.schedule_sizes)
        if not sizes:
            report.fail(f"{lr_path}.schedule_sizes", "must not be empty")
        if len(sizes) != len(manual.learning_rates):
            report.fail(
                f"{lr_path}.learning_rates",
                f"needs one value per schedule_sizes entry ({len(sizes)}), "
                f"got {len(manual.learning_rates)}",
            )
        if any(a >= b for a, b in zip(sizes, sizes[1:], strict=False)):
            report.fail(f"{lr_path}.schedule_sizes", "must be increasing")
        if manual.warmup and sizes[0] == 0:
            report.fail(
                f"{lr_path}.schedule_sizes", "must start above 0 with warmup"
            )


def _oneof(message: Message, name: str = "optimizer") -> str:
    fields = message.DESCRIPTOR.oneofs_by_name[name].fields
    return ", ".join(fd.name for fd in fields)
