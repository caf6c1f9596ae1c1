"""A/B: benchmark rows timed on two builds of convkernels, in alternating processes.

    python bench/ab.py --base ../before [--filter lrn] [--rounds 5] [--threads 2]

On a shared machine whose load changes from minute to minute, two full `convkernels bench`
runs taken apart cannot tell a 10 % kernel change from noise. This times each selected row's
convkernels call in a fresh process per build, alternating the base tree and this checkout
`--rounds` times, and prints per row each build's best and median (over the rounds) of the
per-process median, and the ratio of the best. Both trees must be built in place (`pip install
-e .`, or `python setup.py build_ext --inplace`, e.g. in a `git worktree` of the base commit).
One process imports one tree only: the kernels' shared library is found by its soname, so two
builds cannot share a process.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def child(filters, threads, repeats):
    """In the child: {row id: median ms} of convkernels on the rows matching `filters`."""
    import convkernels
    from convkernels import bench

    convkernels.set_num_threads(threads)
    torch = bench.import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
    settings = bench.Settings(threads=threads, repeats=repeats)
    result = {"tree": str(pathlib.Path(convkernels.__file__).parent.parent)}
    for case in bench.cases(filters=filters):
        prepared = case.prepare(torch)
        prepared.validate()  # as the bench does: an A/B of a wrong kernel is no A/B
        timing = bench.measure({"convkernels": prepared.convkernels}, settings)
        result[case.id] = timing["convkernels"]["median_ms"]
    print(json.dumps(result))


def run_child(tree, args):
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.setdefault("OMP_PROC_BIND", "true")
    env.setdefault("OMP_PLACES", "cores")
    command = [sys.executable, str(HERE / "ab.py"), "--child", "--threads", str(args.threads),
               "--repeats", str(args.repeats)]  # fmt: skip
    for f in args.filter:
        command += ["--filter", f]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        sys.exit(f"{tree}: the timing process failed:\n{done.stderr[-2000:]}")
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    if pathlib.Path(timings.pop("tree")).resolve() != pathlib.Path(tree).resolve():
        sys.exit(f"{tree}: the child imported convkernels from elsewhere (is it built in place?)")
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="the other checkout, built in place")
    parser.add_argument("--filter", action="append", default=[], help="row id substring")
    parser.add_argument("--rounds", type=int, default=5, help="processes per build")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.filter, args.threads, args.repeats)
    if not args.base:
        parser.error("--base is required")
    trees = {"base": pathlib.Path(args.base).resolve(), "this": HERE.parent}
    samples = {name: {} for name in trees}
    for r in range(args.rounds):
        for name in trees if r % 2 == 0 else list(trees)[::-1]:
            print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            for row, ms in run_child(trees[name], args).items():
                samples[name].setdefault(row, []).append(ms)
    print(f"{'row':<44} {'base best/median ms':>20} {'this best/median ms':>20} {'this/base':>9}")
    for row in samples["this"]:
        base, this = samples["base"].get(row), samples["this"][row]
        if not base:
            print(f"{row:<44} {'—':>20} {min(this):9.3f} / {statistics.median(this):8.3f}")
            continue
        print(
            f"{row:<44} {min(base):9.3f} / {statistics.median(base):8.3f} "
            f"{min(this):9.3f} / {statistics.median(this):8.3f} {min(this) / min(base):8.3f}x"
        )


if __name__ == "__main__":
    main()
