"""python -m easymatch.eval: evaluate a checkpoint, write eval_result.txt."""

from __future__ import annotations

import json
import os

from easymatch import cli


def main(args) -> None:
    from easymatch import checkpoint as checkpoints
    from easymatch.run_context import RunContext
    from easymatch.training.evaluate import Evaluator

    config = cli.load_config(args, eval_input_path=args.eval_input_path)
    checkpoint = checkpoints.resolve_checkpoint(
        args.checkpoint_path or config.model_dir
    )
    # Reads the eval input and the sampler tables only: the model is
    # built from the config.
    run = RunContext(config)
    model = run.create_model()
    checkpoints.restore(model, checkpoint, with_optimizers=False)
    metrics = Evaluator(model, run)(config.eval_input_path)
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
