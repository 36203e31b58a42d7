"""Work in spawned processes (``bench.run.processes``) and ``regress --jobs``, which uses it."""

from __future__ import annotations

import operator

import pytest
import torch

from bench.cli import main
from bench.run.processes import map_in_processes, threads_per_process


def test_results_come_back_in_call_order_and_workers_run_with_their_thread_share():
    done = []
    calls = [(2, 10), (3, 2), (5, 1)]
    results = map_in_processes(pow, calls, 2, 1, on_done=lambda i, r: done.append((i, r)))
    assert results == [1024, 9, 5]
    assert sorted(done) == [(0, 1024), (1, 9), (2, 5)]
    assert map_in_processes(torch.get_num_threads, [(), ()], 2, threads=1) == [1, 1]


def test_a_failing_call_raises_its_own_error_in_the_caller():
    with pytest.raises(ZeroDivisionError):
        map_in_processes(operator.truediv, [(1, 1), (1, 0)], 2, 1)


def test_cpu_threads_are_split_and_an_accelerator_keeps_them():
    threads = torch.get_num_threads()
    assert threads_per_process(torch.device("cpu"), 2) == max(1, threads // 2)
    assert threads_per_process(torch.device("cpu"), 10 * threads) == 1
    assert threads_per_process(torch.device("cuda"), 4) == threads


def test_regress_jobs_must_be_positive(tmp_path, capsys):
    assert main(["regress", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --jobs 0: must be at least 1"
