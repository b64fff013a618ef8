"""Contexts on several threads at once, and the GIL released while ramjet works."""

from __future__ import annotations

import threading
import time

import numpy as np

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


def _python_progress_during(fn) -> tuple[int, float]:
    """Counts main-thread loop iterations while fn runs on another thread."""
    done = threading.Event()

    def run():
        fn()
        done.set()

    t = threading.Thread(target=run)
    n = 0
    t0 = time.perf_counter()
    t.start()
    while not done.is_set():
        n += 1
    dt = time.perf_counter() - t0
    t.join()
    return n, dt


def test_gil_released_during_build_and_infer():
    graph = ramjet.import_onnx(str(DETECTOR))
    holder = {}
    n_build, dt_build = _python_progress_during(lambda: holder.setdefault("plan", ramjet.build(graph, device="cpu")))
    engine = ramjet.Engine.from_bytes(holder["plan"].to_bytes())
    ctx = engine.create_context()
    x = np.zeros((2, 3, 640, 640), np.float32)
    n_infer, dt_infer = _python_progress_during(lambda: ctx.infer({"images": x}))
    # With the GIL held for the whole call the main thread could not run at all during it;
    # released, it spins freely (millions of iterations per second on an idle core).
    assert dt_build > 0.05 and dt_infer > 0.05, (dt_build, dt_infer)
    assert n_build / dt_build > 20000, (n_build, dt_build)
    assert n_infer / dt_infer > 20000, (n_infer, dt_infer)
    engine.close()
