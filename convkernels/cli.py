"""The `convkernels` command."""

import argparse
import json
import sys


def _info(args):
    import convkernels

    info = convkernels.info()
    measured = None
    if not args.no_probe:
        from . import probe

        measured = probe.probe()
    if args.json:
        print(json.dumps({**info, "probe": measured}, indent=2))
        return 0
    cuda = info.pop("cuda")
    lines = [(k, ", ".join(v) if isinstance(v, list) else v) for k, v in info.items()]
    if not cuda["compiled"]:
        lines.append(("cuda", "not built (no nvcc when convkernels was built)"))
    elif cuda["available"]:
        lines.append(("cuda", "available: " + "; ".join(cuda["devices"])))
    else:
        lines.append(("cuda", f"built, not available: {cuda['reason']}"))
    if measured is not None:
        from .probe import describe

        lines += describe(measured)
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def _batch(text):
    """--batch N (every preset) or --batch FAMILY=N."""
    from .bench import FAMILIES

    family, _, n = text.rpartition("=")
    try:
        value = int(n)
    except ValueError:
        value = 0
    if value < 1 or (family and family not in FAMILIES):
        raise argparse.ArgumentTypeError(
            f"expected N or FAMILY=N with N >= 1 and FAMILY one of {', '.join(FAMILIES)}, "
            f"got {text!r}"
        )
    return family or None, value


def _bench_gpu(args, case_list):
    import convkernels

    from . import bench_gpu

    if not convkernels.cuda_available():
        reason = convkernels.cuda_info()["reason"]
        print(f"convkernels bench: --device cuda: CUDA is not usable here: {reason}",
              file=sys.stderr)  # fmt: skip
        return 2
    repeats = args.repeats or (5 if args.quick else 20)
    result = bench_gpu.run(case_list, repeats=repeats, warmup=args.warmup or 3)
    print(bench_gpu.format_text(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def _bench(args):
    import convkernels

    from . import bench

    if args.from_json:  # re-print a saved run, e.g. as Markdown for bench/RESULTS.md
        with open(args.from_json) as f:
            result = json.load(f)
        print(bench.format_markdown(result) if args.markdown else bench.format_text(result))
        return 0
    if args.threads < 1:
        print("convkernels bench: --threads must be >= 1", file=sys.stderr)
        return 2
    batch = {}
    for family, n in args.batch or ():  # later ones win
        batch.update(dict.fromkeys(bench.FAMILIES, n) if family is None else {family: n})
    case_list = bench.cases(quick=args.quick, filters=args.filter or (), batch=batch)
    if args.list:
        for case in case_list:
            print(f"{case.id:<36} {case.label} {case.direction}")
        return 0
    if not case_list:
        wanted = " ".join(args.filter or ())
        print(f"convkernels bench: no row matches --filter {wanted}", file=sys.stderr)
        return 2
    if args.device == "cuda":
        return _bench_gpu(args, [c for c in case_list if c.kind != "gemm"])
    settings = bench.Settings.quick() if args.quick else bench.Settings()
    settings.threads = args.threads
    settings.torch = not args.no_torch
    settings.reference = not args.no_reference
    if args.warmup is not None:
        settings.warmup = max(0, args.warmup)
    if args.repeats is not None:
        settings.repeats = max(1, args.repeats)
    show_progress = not args.no_progress and sys.stderr.isatty()
    isa_before = convkernels.get_isa()
    try:
        if args.isa:
            try:
                convkernels.set_isa(args.isa)
            except ValueError as e:
                print(f"convkernels bench: --isa: {e}", file=sys.stderr)
                return 2
        probe_result = None
        if not args.no_probe:
            from . import probe

            if show_progress:
                print("probing GEMM and copy bandwidth ...", end="", file=sys.stderr, flush=True)
            probe_result = probe.probe(args.threads)
        result = bench.run(
            case_list, settings, probe_result,
            progress=bench.progress_to_stderr if show_progress else None,
        )  # fmt: skip
    finally:
        convkernels.set_isa(isa_before)
        if show_progress:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    print(bench.format_markdown(result) if args.markdown else bench.format_text(result))
    if args.json:
        bench.write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if result["summary"]["failed"] else 0


def _train(args):
    from .train import TrainConfig, train

    config = TrainConfig(
        model=args.model_opt or args.model_arg or "lenet5", dataset=args.dataset,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_step=args.lr_step,
        seed=args.seed, threads=args.threads, device=args.device, out=args.out,
        resume=args.resume,
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
    info.add_argument(
        "--no-probe", action="store_true",
        help="skip the ~1-2 s measurement of GEMM GFLOP/s and copy bandwidth",
    )  # fmt: skip
    info.set_defaults(run=_info)

    bench = commands.add_parser(
        "bench", help="time every kernel against PyTorch and the NumPy reference",
        description="Validate, then time, every layer preset (LeNet-5, CIFAR, AlexNet convs in "
        "three directions, some also forward with bias and ReLU fused; pooling, ReLU, LRN, LCN; "
        "SGEMM) with convkernels, PyTorch and the "
        "NumPy reference in one process on the same threads, interleaved; medians.",
    )  # fmt: skip
    bench.add_argument(
        "--quick", action="store_true", help="a few layers, few repeats: a smoke run (< 1 min)"
    )
    bench.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads for convkernels and PyTorch alike (default: 2)",
    )
    bench.add_argument(
        "--filter",
        action="append",
        metavar="SUBSTRING",
        help="only rows whose id or name contains it (repeatable: any of them)",
    )
    bench.add_argument(
        "--batch",
        action="append",
        type=_batch,
        metavar="N|FAMILY=N",
        help="batch size for every preset, or for one family (lenet, cifar, "
        "alexnet), e.g. --batch alexnet=32; repeatable",
    )
    bench.add_argument("--json", metavar="PATH", help="also write every number to PATH")
    bench.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    bench.add_argument(
        "--from-json",
        metavar="PATH",
        help="print the table of a run saved with --json (nothing runs)",
    )
    bench.add_argument("--repeats", type=int, help="timed rounds (default 9, --quick 3)")
    bench.add_argument("--warmup", type=int, help="warm-up calls (default 2, --quick 1)")
    bench.add_argument("--isa", help="run convkernels' kernels for this ISA level")
    bench.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"),
        help="cuda: the GPU suite, CUDA kernels against cuDNN (see convkernels.bench_gpu)",
    )  # fmt: skip
    bench.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    bench.add_argument("--no-reference", action="store_true", help="leave the NumPy column out")
    bench.add_argument(
        "--no-probe",
        action="store_true",
        help="skip measuring GEMM GFLOP/s and DRAM copy bandwidth first",
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    bench.add_argument("--list", action="store_true", help="list the rows and exit")
    bench.set_defaults(run=_bench)

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
    train.add_argument("--lr-step", type=int, help="epochs between 10x learning-rate drops")
    train.add_argument("--threads", type=int, help="kernel threads (default: all cores)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"),
        help="cuda: train on the GPU (needs a CUDA build and CuPy; see README)",
    )  # fmt: skip
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
