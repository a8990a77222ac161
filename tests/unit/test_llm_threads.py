"""How many threads llama.cpp gets by default: the job's CPUs, not the machine's (no llama.cpp needed)."""

import os

import pytest

from audioprobe import llm

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")


def test_threads_default_to_the_cpus_the_process_is_pinned_to(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert llm.usable_cpus() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert llm.usable_cpus() == len(allowed)


def test_a_slurm_allocation_caps_the_threads_where_the_site_does_not_pin_jobs(monkeypatch):
    allowed = len(os.sched_getaffinity(0))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert llm.usable_cpus() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(allowed + 8))
    assert llm.usable_cpus() == allowed


def test_load_uses_them_when_no_thread_count_is_configured(monkeypatch, tmp_path):
    import sys
    import types

    seen = {}

    class Llama:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(Llama=Llama))
    monkeypatch.setattr(llm, "usable_cpus", lambda: 3)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    llm.load(gguf)
    assert seen["n_threads"] == 3
    llm.load(gguf, threads=5)
    assert seen["n_threads"] == 5
