"""The `convkernels` command."""

import argparse
import json
import sys


def _info(args):
    import convkernels

    info = convkernels.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}}  {value}")
    return 0


def _train(args):
    from .train import TrainConfig, train

    config = TrainConfig(
        model=args.model_opt or args.model_arg or "lenet5", dataset=args.dataset,
        epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, threads=args.threads, out=args.out, resume=args.resume,
        data_dir=args.data_dir, limit=args.limit, progress=not args.no_progress,
    )  # fmt: skip
    try:
        history = train(config)
    except KeyboardInterrupt:
        return 130
    best = history[-1]
    print(
        f"test accuracy {100 * best['test_accuracy']:.2f} % after {best['epoch']} epochs; "
        f"results in {config.out}/ (metrics.json, curves.png, filters.png)"
    )
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="convkernels", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="what this installation is and runs")
    info.add_argument("--json", action="store_true", help="print as JSON")
    info.set_defaults(run=_info)

    from .train import DATASETS, MODELS

    train = commands.add_parser(
        "train", help="train a model (default: modern LeNet-5 on MNIST)",
        description="Train a model; checkpoints every epoch into --out, --resume continues.",
    )  # fmt: skip
    # The model may be named as `train lenet5` or `train --model lenet5`.
    train.add_argument(
        "model_arg",
        nargs="?",
        choices=sorted(MODELS),
        metavar="model",
        help=f"one of {', '.join(sorted(MODELS))} (default: lenet5)",
    )
    train.add_argument("--model", dest="model_opt", choices=sorted(MODELS), help=argparse.SUPPRESS)
    train.add_argument("--dataset", default="mnist", choices=DATASETS)
    train.add_argument("--epochs", type=int, help="default: the model's own")
    train.add_argument("--batch-size", type=int, help="default: the model's own")
    train.add_argument("--lr", type=float, help="initial learning rate (default: the model's)")
    train.add_argument("--threads", type=int, help="kernel threads (default: all cores)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="runs/latest", help="output directory")
    train.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    train.add_argument("--data-dir", help="where the dataset files are (default: search)")
    train.add_argument("--limit", type=int, help="train on the first N images only")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(run=_train)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
