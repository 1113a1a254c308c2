"""python -m easymatch.eval: evaluate a checkpoint, write eval_result.txt."""

from __future__ import annotations

import json
import os

from easymatch import cli


def main(args) -> None:
    import tensorflow as tf

    from easymatch.features.builder import build_feature_set
    from easymatch.training import checkpoints
    from easymatch.training.evaluate import Evaluator
    from easymatch.training.loop import create_model

    config = cli.load_config(args, eval_input_path=args.eval_input_path)
    checkpoint = checkpoints.resolve_checkpoint(
        args.checkpoint_path or config.model_dir
    )
    strategy = tf.distribute.get_strategy()
    feature_set = build_feature_set(config)
    model = create_model(config, feature_set, strategy)
    checkpoints.restore(model, checkpoint, with_optimizers=False)
    evaluator = Evaluator(model, config, feature_set, strategy)
    metrics = evaluator(config.eval_input_path)
    result = {"global_step": checkpoints.checkpoint_step(checkpoint)}
    result.update(metrics)
    path = os.path.join(config.model_dir, args.eval_result_filename)
    with open(path, "w") as handle:
        handle.write(json.dumps(result, sort_keys=True) + "\n")
    print(json.dumps(result, sort_keys=True))


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--checkpoint_path",
        default=None,
        help="checkpoint prefix or directory (default: latest in model_dir)",
    )
    parser.add_argument("--eval_input_path", default=None)
    parser.add_argument("--eval_result_filename", default="eval_result.txt")
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
