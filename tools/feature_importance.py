"""Feature importance learned by variational dropout, per tower.

python tools/feature_importance.py --model_dir D [--checkpoint_path C]

Reads D/pipeline.config (trained with `model_config.variational_dropout`),
restores the latest checkpoint in D (or C) and prints, per tower, its
group's features sorted by keep probability 1 − sigmoid(feature_p):
TorchEasyRec's sigmoid(feature_p) is the probability of dropping the
feature, so a feature the model needs keeps a probability near 1.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from easymatch.errors import EasyMatchError  # noqa: E402
from easymatch.specs.groups import GroupSpec  # noqa: E402


def feature_importance(
    model_dir: str, checkpoint_path: str | None = None
) -> dict[str, list[tuple[str, float]]]:
    """Tower → [(feature, keep probability)], most important first."""
    from easymatch import checkpoint as checkpoints
    from easymatch.config import load_pipeline_config
    from easymatch.models.builder import build_model
    from easymatch.run_context import RunContext

    config = load_pipeline_config(os.path.join(model_dir, "pipeline.config"))
    if not config.model_config.HasField("variational_dropout"):
        raise EasyMatchError(
            f"{model_dir}/pipeline.config: model_config.variational_dropout "
            "is not set, so no feature importance was learned"
        )
    # Every variable exists once the model is built, so unlike training
    # this needs no batch of the (possibly moved) training data.
    model = build_model(RunContext(config).specs.model)
    checkpoints.restore(
        model, checkpoint_path or model_dir, with_optimizers=False
    )
    report = {}
    for tower, keep in model.feature_keep_probabilities().items():
        group = model.user_group if tower == "user" else model.item_group
        names = _display_names(group)
        report[tower] = sorted(
            ((names.get(k, k), p) for k, p in keep.items()),
            key=lambda item: -item[1],
        )
    return report


def _display_names(group: GroupSpec) -> dict[str, str]:
    """`<group>_seq_encoder_<i>` → that name with its sequence group."""
    return {
        f"{group.name}_seq_encoder_{i}": (
            f"{group.name}_seq_encoder_{i} ({encoder.input})"
        )
        for i, encoder in enumerate(group.sequence_encoders)
    }


def format_report(report: dict[str, list[tuple[str, float]]]) -> str:
    lines = []
    for tower, ranked in report.items():
        width = max(len("feature"), *(len(name) for name, _ in ranked))
        lines.append(f"{tower} tower")
        lines.append(f"{'rank':>4}  {'feature':<{width}}  keep_probability")
        for rank, (name, keep) in enumerate(ranked, 1):
            lines.append(f"{rank:>4}  {name:<{width}}  {keep:.4f}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument(
        "--checkpoint_path",
        default=None,
        help="checkpoint prefix (default: the latest in model_dir)",
    )
    args = parser.parse_args()
    try:
        report = feature_importance(args.model_dir, args.checkpoint_path)
    except EasyMatchError as error:
        print(f"easymatch: error: {error}", file=sys.stderr)
        sys.exit(2)
    if not report:
        print("no tower has more than one feature: nothing to rank")
    print(format_report(report), end="")


if __name__ == "__main__":
    main()
