"""Worker processes (`blobhelpers.core.parallel.process_map`): results in task order, errors with their type,
the native thread pools of the workers, the worker count."""

import os

import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import cpu_count, n_workers, process_map


def test_results_come_in_task_order_with_or_without_workers():
    tasks = [(3, k) for k in range(7)]
    seen = []
    assert process_map(pow, tasks, n_jobs=2, progress=seen.append) == [3 ** k for k in range(7)] == seen
    assert process_map(pow, tasks, n_jobs=1) == [3 ** k for k in range(7)]
    assert process_map(pow, [], n_jobs=2) == []


def test_a_task_error_is_raised_with_its_type():
    with pytest.raises(InputError, match="n_jobs 0"):
        process_map(n_workers, [(1, 5), (0, 5), (2, 5)], n_jobs=2)


def test_workers_get_limited_native_thread_pools_and_the_caller_keeps_its_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")  # a setting of the caller is passed on, not overridden
    got = process_map(os.getenv, [("OMP_NUM_THREADS",), ("OPENBLAS_NUM_THREADS",)], n_jobs=2)
    assert got == [str(max(1, cpu_count() // 2)), "7"]
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["OPENBLAS_NUM_THREADS"] == "7"
    assert process_map(os.getenv, [("OMP_NUM_THREADS",)], n_jobs=2) == [None]  # one task: no worker


def test_worker_count_default_and_bad_values(monkeypatch):
    monkeypatch.delenv("BLOBHELPERS_WORKERS", raising=False)
    assert n_workers(None, 100) == min(2, cpu_count())
    assert n_workers(8, 3) == 3 and n_workers(3, 0) == 1
    monkeypatch.setenv("BLOBHELPERS_WORKERS", "5")
    assert n_workers(None, 100) == 5 and n_workers(1, 100) == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("BLOBHELPERS_WORKERS", bad)
        with pytest.raises(InputError, match="BLOBHELPERS_WORKERS"):
            n_workers(None, 4)
    for bad in (0, -2, 1.5, "2", True):
        with pytest.raises(InputError, match="n_jobs"):
            n_workers(bad, 4)


def _pid_and_nested(env):
    """This worker's pid, the pid a nested one-worker map with the same *env* runs in, and the env's values."""
    return os.getpid(), process_map(os.getpid, [()], n_jobs=1, env=env)[0], [os.environ.get(k) for k in env]


def test_env_starts_workers_with_it_even_for_one_task_and_the_caller_keeps_its_own(monkeypatch):
    """A pinned environment (what native libraries read when they start: TensorFlow's thread pools, oneDNN's
    instruction set) reaches the workers before anything runs there, overrides the caller's values, and is
    not left in the caller; nested maps with the same environment run in place; *fresh* gives every task
    its own process."""
    from blobhelpers.core.parallel import PINNED_MARK, runs_pinned

    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "BLOBHELPERS_TEST_PIN": "7"}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    monkeypatch.delenv("BLOBHELPERS_TEST_PIN", raising=False)
    (pid, nested, values), = process_map(_pid_and_nested, [(env,)], n_jobs=1, env=env)
    assert pid != os.getpid() and nested == pid and values == ["AVX2", "7"]
    assert process_map(runs_pinned, [(env,)], n_jobs=1, env=env) == [True]
    assert not runs_pinned(env) and PINNED_MARK not in os.environ
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE" and "BLOBHELPERS_TEST_PIN" not in os.environ
    # fresh: a new process per task (nothing left from an earlier task), results in task order
    pids = process_map(os.getpid, [()] * 3, n_jobs=2, env=env, fresh=True)
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert len(set(process_map(os.getpid, [()] * 3, n_jobs=1, fresh=True))) == 3
    assert process_map(os.getpid, [()] * 2, n_jobs=1) == [os.getpid()] * 2  # no env, not fresh: in place
    assert process_map(os.getenv, [("BLOBHELPERS_TEST_PIN",)] * 3, n_jobs=2, env=env, fresh=True) == ["7"] * 3
