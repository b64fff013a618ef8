"""Contexts on several threads at once, and the GIL released while ramjet works."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import ramjet
from conftest import DETECTOR


def test_contexts_on_threads_agree(tiny_engine):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((4, 3, 32, 32)).astype(np.float32) for _ in range(4)]
    ref = [tiny_engine.create_context().infer({"images": x})["probs"] for x in xs]
    errors = []

    def worker(k):
        try:
            ctx = tiny_engine.create_context()
            for _ in range(20):
                y = ctx.infer({"images": xs[k]})["probs"]
                np.testing.assert_array_equal(y, ref[k])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def test_one_context_shared_by_threads_is_serialized(tiny_engine):
    ctx = tiny_engine.create_context()
    x = np.ones((2, 3, 32, 32), np.float32)
    want = ctx.infer({"images": x})["probs"]
    bad = []

    def worker():
        for _ in range(20):
            if not np.array_equal(ctx.infer({"images": x})["probs"], want):
                bad.append(1)

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad


def _longest_main_thread_stall(fn) -> tuple[float, float]:
    """Runs fn on another thread; returns (longest gap between main-thread loop iterations, fn's duration)."""
    started, done = threading.Event(), threading.Event()
    span = {}

    def run():
        started.set()
        t0 = time.perf_counter()
        fn()
        span["dt"] = time.perf_counter() - t0
        done.set()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    gap = 0.0
    last = time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        gap = max(gap, now - last)
        last = now
    t.join()
    return gap, span["dt"]


def test_gil_released_during_build_and_infer():
    # Held for a whole call, the GIL would stall this thread for the call's duration; released,
    # the stalls are scheduling and GIL hand-off noise (milliseconds).
    graph = ramjet.import_onnx(str(DETECTOR))
    holder = {}
    gap_b, dt_b = _longest_main_thread_stall(lambda: holder.setdefault("plan", ramjet.build(
        graph, device="cpu", profiles={"images": ((1, 3, 640, 640), (2, 3, 640, 640), (2, 3, 640, 640))})))
    engine = ramjet.Engine.from_bytes(holder["plan"].to_bytes())
    ctx = engine.create_context()
    x = np.zeros((2, 3, 640, 640), np.float32)
    ctx.infer({"images": x})

    calls = []

    def infer_for_a_while():  # at least 0.3 s of calls, whatever the machine's speed
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.3:
            t1 = time.perf_counter()
            ctx.infer({"images": x})
            calls.append(time.perf_counter() - t1)

    gap_i, dt_i = _longest_main_thread_stall(infer_for_a_while)
    shortest = min(calls)
    print(f"build {dt_b:.2f} s (longest stall {gap_b * 1e3:.1f} ms); {len(calls)} infer calls, shortest "
          f"{shortest * 1e3:.1f} ms (longest stall {gap_i * 1e3:.1f} ms)")
    if dt_b > 0.2:  # a build too short to tell is not checked
        assert gap_b < 0.5 * dt_b, (gap_b, dt_b)
    if shortest < 0.05:
        pytest.skip(f"infer calls of {shortest * 1e3:.1f} ms are too short to tell a held GIL from noise")
    # A call holding the GIL would stall this thread for the whole call.
    assert gap_i < 0.5 * shortest, (gap_i, shortest)
    engine.close()
