"""The benchmark tooling: `convkernels bench` in quick mode on tiny layers, the registry, the probe.

Structure only: no assertion here depends on how fast anything ran.
"""

import json
import pathlib

import pytest

import convkernels
from convkernels import bench, cli, probe

TINY = ["--quick", "--no-probe", "--no-progress", "--repeats", "1", "--warmup", "0"]


def test_bench_quick_prints_the_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    argv = ["bench", *TINY, "--filter", "lenet-c5/b64", "--filter", "maxpool2x2/b256/bwd"]
    assert cli.main([*argv, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    for column in bench.HEADERS:
        assert column in out
    for what in ("machine", "threads", "versions", "ISA", "date", "peak"):
        assert what in out
    result = json.loads(path.read_text())
    assert set(result) == {"meta", "rows", "summary"}
    meta = result["meta"]
    assert meta["threads"] == 2 and meta["convkernels"] == convkernels.__version__
    assert meta["convkernels_isa"] == convkernels.get_isa() and meta["probe"] is None
    rows = result["rows"]
    assert [r["id"] for r in rows] == [
        "lenet-c5/b64/fwd",
        "lenet-c5/b64/bwd-input",
        "lenet-c5/b64/bwd-weight",
        "lenet-maxpool2x2/b256/bwd",
    ]
    torch = bench.import_torch()
    for row in rows:
        assert row["error"] is None
        assert row["convkernels_ms"] > 0 and row["rate"] > 0 and row["pct_peak"] > 0
        assert row["reference_ms"] > 0  # small shapes time the NumPy reference too
        assert row["validated_against"] == ("PyTorch" if torch else "reference")
        assert (row["torch_ms"] is not None) == (torch is not None)
        assert row["layer"] in out
    assert [r["metric"] for r in rows] == ["GFLOP/s"] * 3 + ["GB/s"]
    assert rows[0]["work"] == 2 * 64 * 120 * 16 * 5 * 5 * 1 * 1
    assert rows[3]["copy_ms"] > 0  # memory-bound rows are judged against a same-size copy
    summary = result["summary"]
    assert summary["failed"] == []
    assert cli.main(["bench", "--from-json", str(path), "--markdown"]) == 0
    markdown = capsys.readouterr().out
    summary_rows = (summary["worst"] is not None) + (summary["conv_geomean_speedup"] is not None)
    assert markdown.count("\n| ") == 1 + len(rows) + summary_rows  # header, rows, summary
    if torch is not None:
        assert summary["conv_rows"] == 3 and summary["conv_geomean_speedup"] > 0
        assert summary["worst"]["id"] in {r["id"] for r in rows}
        assert "geometric mean, 3 conv rows" in out and "worst: " in out


def test_bench_markdown_table(capsys):
    argv = ["bench", *TINY, "--no-torch", "--filter", "lenet-c5/b64/fwd", "--markdown"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| " + " | ".join(bench.HEADERS) + " |"
    assert set(table[1]) <= set("|-: ")
    assert table[2].startswith("| LeNet C5 16→120 5×5 5² b64 | fwd |")
    assert any(line.startswith("- date: ") for line in lines)


def test_bench_list_filter_and_batch(capsys):
    assert cli.main(["bench", "--list", "--batch", "alexnet=32", "--filter", "conv1"]) == 0
    listed = capsys.readouterr().out.split()
    assert "alexnet-conv1/b32/bwd-weight" in listed and "alexnet-conv1/b16/fwd" not in listed
    assert cli.main(["bench", "--filter", "no-such-layer"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["bench", "--batch", "imagenet=3"])


def test_registry():
    every = bench.cases()
    assert len(every) == len({c.id for c in every}) == 62
    fused = [c.id for c in every if c.direction == "fwd+ReLU"]
    assert fused == [
        "lenet-c1/b64/fwd+ReLU",
        "lenet-c1/b256/fwd+ReLU",
        "cifar-c1/b128/fwd+ReLU",
        "alexnet-conv1/b16/fwd+ReLU",
        "alexnet-conv3/b16/fwd+ReLU",
    ]
    assert {c.kind for c in every} == set(bench.KINDS)
    conv1 = next(c for c in every if c.id == "alexnet-conv1/b16/fwd")
    assert conv1.spec.output_size == (55, 55)
    assert conv1.work == 2 * 16 * 96 * 3 * 11 * 11 * 55 * 55
    conv2 = next(c for c in every if c.id == "alexnet-conv2/b16/bwd-weight")
    assert conv2.work == 2 * 16 * 256 * 48 * 5 * 5 * 27 * 27
    relu = next(c for c in every if c.id == "alexnet-relu/b16/bwd")
    assert relu.metric == "GB/s" and relu.work == 3 * 4 * 16 * 96 * 55 * 55
    pool = next(c for c in every if c.id == "alexnet-maxpool3x3s2/b16/fwd")
    assert pool.work == 4 * 16 * 96 * (55 * 55 + 3 * 27 * 27)  # x, y and int64 indices
    assert [c.batch for c in bench.cases(filters=["lenet-c1/"])] == [64] * 4 + [256] * 4
    assert {c.batch for c in bench.cases(kinds=("conv",), batch=8)} == {8}
    quick = bench.cases(quick=True)
    assert 0 < len(quick) < len(every) and set(quick) <= set(every)
    with pytest.raises(ValueError, match="family"):
        bench.cases(batch={"vgg": 1})


def test_a_wrong_kernel_is_caught_before_timing(monkeypatch):
    case = bench.cases(filters=["lenet-c5/b64/fwd"])[0]
    prepared = case.prepare(torch=None)
    right = prepared.convkernels()
    prepared.convkernels = lambda: right * 1.01
    with pytest.raises(bench.ValidationError, match="lenet-c5/b64/fwd"):
        prepared.validate()
    monkeypatch.setattr(convkernels, "conv2d", lambda *a, **k: right[:, :-1])
    result = bench.run([case], bench.Settings.quick(repeats=1, torch=False))
    assert "validation failed" in result["rows"][0]["error"]
    assert result["summary"]["failed"] == [case.id]
    assert "FAILED" in bench.format_text(result)


def test_probe_pieces_and_peak(monkeypatch):
    copy = probe.copy_bandwidth(nbytes=4 << 20, threads=2, repeats=2)
    assert copy["gbs"] >= copy["gbs_1thread"] > 0 and copy["gbs_threads"] > 0
    gemm = probe.gemm_gflops(n=64, budget_s=0.0, repeats=2)
    assert gemm["gflops"] > 0 and gemm["n"] == 64
    monkeypatch.delenv(probe.PEAK_ENV, raising=False)
    peak = probe.peak_gflops(1)
    assert peak["gflops"] > 0 and peak["source"].startswith("measured")
    monkeypatch.setenv(probe.PEAK_ENV, "1000")
    assert probe.peak_gflops(2) == {"gflops": 1000.0, "source": f"${probe.PEAK_ENV}"}
    monkeypatch.setenv(probe.PEAK_ENV, "fast")
    with pytest.raises(ValueError, match=probe.PEAK_ENV):
        probe.peak_gflops(2)


@pytest.mark.parametrize("isa", convkernels.supported_isas())
def test_fma_peak_counts_the_flops_it_runs(isa):
    from convkernels import _C

    before = convkernels.get_isa()
    convkernels.set_isa(isa)
    try:
        lanes = {"avx512": 16, "avx2": 8, "portable": 4}[isa]
        run = _C.fma_peak_run(1000)
        assert run["flops"] == 2 * 12 * lanes * 1000 * run["threads"]
        assert run["seconds"] > 0 and run["threads"] == convkernels.get_num_threads()
        # each chain steps acc <- 0.999 acc + 0.001 from 1 + thread + j / 8, `rounds` times
        starts = [1 + t + j / 8 for t in range(run["threads"]) for j in range(12)]
        expected = lanes * sum(1 + (s - 1) * 0.999**1000 for s in starts)
        assert run["checksum"] == pytest.approx(expected, rel=1e-4)
        peak = probe.fma_peak(threads=1, budget_s=0.0, repeats=2, min_run_s=0.001)
        assert peak["gflops"] > 0 and peak["isa"] == isa and peak["threads"] == 1
    finally:
        convkernels.set_isa(before)
    with pytest.raises(ValueError, match="rounds"):
        _C.fma_peak_run(0)


def test_info_without_probe(capsys):
    assert cli.main(["info", "--no-probe", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["probe"] is None and info["version"] == convkernels.__version__
    assert cli.main(["info", "--no-probe"]) == 0
    assert "measured GEMM" not in capsys.readouterr().out


def test_training_throughput_twins_compute_the_same_networks():
    # bench/training_throughput.py times each LeNet-5 against a PyTorch twin; a fair ratio needs
    # the twin to be the same network (same parameters in, same logits out).
    torch = pytest.importorskip("torch")
    import importlib.util

    import numpy as np

    from convkernels import models

    path = pathlib.Path(__file__).parent.parent / "bench" / "training_throughput.py"
    spec = importlib.util.spec_from_file_location("training_throughput", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    classic = models.lenet5("classic")
    twin = script.torch_lenet5_classic(torch, classic)
    np.testing.assert_allclose(
        twin(torch.from_numpy(x)).detach().numpy(), classic.forward(x), rtol=1e-5, atol=1e-5
    )
    modern = models.lenet5("modern")
    twin = script.torch_lenet5(torch)
    for (_, ours), theirs in zip(modern.state_dict().items(), twin.parameters()):
        theirs.data.copy_(torch.from_numpy(ours))
    np.testing.assert_allclose(
        twin(torch.from_numpy(x)).detach().numpy(), modern.forward(x), rtol=1e-5, atol=1e-5
    )


def test_ab_script_times_rows_of_two_trees(tmp_path):
    # bench/ab.py with this checkout as both trees: it must run a row in a process per tree,
    # check that each process imported the tree it was given, and print one line per row.
    import subprocess
    import sys

    root = pathlib.Path(__file__).parent.parent
    row = "lenet-tanh/b256/bwd"
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "ab.py"), "--base", str(root), "--filter", row,
         "--rounds", "1", "--repeats", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(row)]
    assert len(lines) == 1 and lines[0].endswith("x"), done.stdout
