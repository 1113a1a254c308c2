"""python -m easymatch.train_eval: train, checkpoint and evaluate."""

from __future__ import annotations

from easymatch import cli
from easymatch.training.cluster import MODES


def main(args) -> None:
    from easymatch.errors import ConfigError
    from easymatch.export.exporter import make_exporter
    from easymatch.training.cluster import (
        PARAMETER_SERVER,
        choose_mode,
        read_tf_config,
    )
    from easymatch.training.loop import train_and_evaluate
    from easymatch.training.strategies import make_strategy, serve

    config = cli.load_config(
        args,
        model_dir=args.model_dir,
        train_input_path=args.train_input_path,
        eval_input_path=args.eval_input_path,
    )
    if not config.train_input_path:
        raise ConfigError(
            f"{args.pipeline_config_path}: train_input_path: empty; set it "
            "in the config or pass --train_input_path"
        )
    if args.fine_tune_checkpoint:
        config.train_config.fine_tune_checkpoint = args.fine_tune_checkpoint
    # TF_CONFIG decides this process's role (docs/distributed.md).
    cluster = read_tf_config()
    mode = choose_mode(
        cluster,
        args.distribute_strategy or config.train_config.distribute_strategy,
    )
    if cluster.task_type == "evaluator":
        from easymatch.training.sidecar_evaluator import run_evaluator

        run_evaluator(config, cluster, make_exporter)
        return
    if mode == PARAMETER_SERVER and cluster.task_type in ("ps", "worker"):
        serve(cluster, config)
        return
    strategy = make_strategy(cluster, mode)
    if mode == PARAMETER_SERVER:
        from easymatch.training.ps_loop import train_and_evaluate_ps

        train_and_evaluate_ps(
            config,
            strategy=strategy,
            cluster=cluster,
            ignore_restore_optimizer=args.ignore_restore_optimizer,
            make_exporter=make_exporter,
        )
        return
    # With export_config, towers are exported to model_dir/export/ after
    # evaluations (docs/export.md).
    train_and_evaluate(
        config,
        strategy=strategy,
        ignore_restore_optimizer=args.ignore_restore_optimizer,
        make_exporter=make_exporter,
    )


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--model_dir", default=None)
    parser.add_argument("--train_input_path", default=None)
    parser.add_argument("--eval_input_path", default=None)
    parser.add_argument(
        "--continue_train",
        action="store_true",
        help="accepted for TorchEasyRec compatibility: training always "
        "resumes from the latest checkpoint in model_dir",
    )
    parser.add_argument("--fine_tune_checkpoint", default=None)
    parser.add_argument(
        "--ignore_restore_optimizer",
        action="store_true",
        help="on resume, restore weights and step but not optimizer slots",
    )
    parser.add_argument(
        "--distribute_strategy",
        default=None,
        choices=MODES,
        help="overrides train_config.distribute_strategy (default: from "
        "TF_CONFIG, see docs/distributed.md)",
    )
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
