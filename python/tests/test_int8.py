"""INT8 builds with a Python calibrator (runs where the C++ API has INT8, issue #6)."""

from __future__ import annotations

import numpy as np
import pytest

import ramjet
from conftest import TINY, cosine, ort_run

pytestmark = pytest.mark.skipif("int8" not in ramjet.PRECISIONS, reason="this ramjet has no INT8 precision")

PROFILE = {"images": ((1, 3, 32, 32), (8, 3, 32, 32), (8, 3, 32, 32))}


class Batches(ramjet.Calibrator):
    def __init__(self, n=4, bad=None):
        self.calls = 0
        self.n = n
        self.bad = bad
        self.rng = np.random.default_rng(7)

    @property
    def num_batches(self):
        return self.n

    def get_batch(self):
        self.calls += 1
        if self.bad == "raise":
            raise RuntimeError("no more data here")
        if self.bad == "name":
            return {"nope": np.zeros((8, 3, 32, 32), np.float32)}
        if self.calls > self.n:
            return None
        return {"images": self.rng.standard_normal((8, 3, 32, 32)).astype(np.float32)}


def test_int8_build_uses_the_python_calibrator(tiny_graph, tmp_path):
    data = Batches()
    cache = tmp_path / "calib.json"
    plan = ramjet.build(tiny_graph, device="cpu", precision="int8", profiles=PROFILE, calibrator=data,
                        calibration_cache=str(cache))
    assert data.calls >= 2  # batches drawn (and the end seen or the batch count reached)
    e = ramjet.Engine.from_bytes(plan.to_bytes())
    assert e.info["precision"] == "int8"
    x = np.random.default_rng(8).standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = e.create_context().infer({"images": x})["probs"]
    (ref,) = ort_run(TINY, {"images": x})
    c = cosine(y, ref)
    print(f"int8 (python calibrator, {data.calls} get_batch calls) vs onnxruntime: cosine {c:.5f}")
    assert c > 0.98
    if cache.exists():  # a second build reads the cache instead of calibrating
        again = Batches()
        ramjet.build(tiny_graph, device="cpu", precision="int8", profiles=PROFILE, calibrator=again,
                     calibration_cache=str(cache))
        assert again.calls == 0


@pytest.mark.parametrize("bad,match", [("raise", "no more data here"), ("name", "missing input .images.")])
def test_calibrator_errors_propagate(tiny_graph, bad, match):
    with pytest.raises(ramjet.RamjetError, match=match):
        ramjet.build(tiny_graph, device="cpu", precision="int8", profiles=PROFILE, calibrator=Batches(bad=bad))


class Rewindable(Batches):
    def reset(self):
        self.calls = 0
        self.rng = np.random.default_rng(7)


def test_accuracy_budget_with_a_python_metric(tiny_graph):
    seen = []

    def metric(candidate, reference):
        # lists (per calibration batch) of lists of numpy outputs, in the engine's output order
        seen.append((len(candidate), [o.shape for o in candidate[0]], type(reference[0][0])))
        got = np.concatenate([b[0].ravel() for b in candidate])
        ref = np.concatenate([b[0].ravel() for b in reference])
        return float(np.abs(got - ref).max())

    plan = ramjet.build(tiny_graph, device="cpu", precision="int8", profiles=PROFILE, calibrator=Rewindable(),
                        accuracy_budget=0.5, accuracy_metric=metric, accuracy_samples=2)
    assert seen and seen[0][0] == 2 and seen[0][1] == [(8, 10)] and seen[0][2] is np.ndarray
    r = plan.report
    assert "accuracy budget 50.000%" in r.accuracy_budget and " met" in r.accuracy_budget
    assert r.int8_layers, "the tiny CNN keeps its INT8 conv within a 50% budget"
    assert "accuracy budget" in str(r)


def test_accuracy_budget_errors(tiny_graph):
    with pytest.raises(ramjet.RamjetError, match="accuracy_budget applies to precision='int8'"):
        ramjet.BuildOptions(precision="fp16", accuracy_budget=0.01)
    with pytest.raises(ramjet.RamjetError, match="accuracy_metric must be"):
        ramjet.BuildOptions(precision="int8", accuracy_budget=0.01, accuracy_metric="f1")

    def broken(candidate, reference):
        raise ValueError("metric exploded")

    with pytest.raises(ramjet.RamjetError, match="metric exploded"):
        ramjet.build(tiny_graph, device="cpu", precision="int8", profiles=PROFILE, calibrator=Rewindable(),
                     accuracy_budget=0.01, accuracy_metric=broken)
    with pytest.raises(ramjet.RamjetError, match="cannot rewind"):
        ramjet.build(tiny_graph, device="cpu", precision="int8", profiles=PROFILE, calibrator=Batches(),
                     accuracy_budget=0.01, accuracy_metric="cosine")
