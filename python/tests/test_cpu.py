"""CPU backend through the Python API: import, build, save, load, infer, against onnxruntime."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

import ramjet
from conftest import DETECTOR, MODELS, REPO, TINY, cosine, ort_run


def test_version_matches_cmake_project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    want = re.search(r"project\(ramjet VERSION ([0-9.]+)", text).group(1)
    assert ramjet.__version__ == want


def test_graph_metadata(tiny_graph):
    g = tiny_graph
    assert g.num_nodes == len(g) > 0
    (inp,) = g.inputs
    assert inp.name == "images"
    assert inp.dtype == np.float32
    assert inp.shape == ("N", 3, 32, 32)
    (out,) = g.outputs
    assert out.name == "probs" and out.shape == ("N", 10)
    assert sum(g.op_counts.values()) == g.num_nodes
    assert "Conv" in g.op_counts
    assert "images" in g.dump()
    assert "nodes" in repr(g)


def test_import_from_bytes_matches_file(tiny_graph):
    g = ramjet.import_onnx_bytes(TINY.read_bytes())
    assert g.num_nodes == tiny_graph.num_nodes
    assert g.inputs == tiny_graph.inputs


def test_build_save_load_infer_matches_onnxruntime(tiny_plan_path, tiny_input):
    engine = ramjet.Engine.load(str(tiny_plan_path))
    assert engine.device == "cpu"
    assert [i.name for i in engine.inputs] == ["images"]
    assert engine.inputs[0].dtype == np.float32
    assert engine.outputs[0].name == "probs"
    assert engine.info["precision"] == "fp32"
    assert engine.info["ramjet_version"] == ramjet.__version__
    ctx = engine.create_context()
    got = ctx.infer({"images": tiny_input})
    assert list(got) == ["probs"]
    (ref,) = ort_run(TINY, {"images": tiny_input})
    y = got["probs"]
    assert y.dtype == np.float32 and y.shape == ref.shape
    err = np.abs(y - ref).max()
    assert err < 1e-4, err
    assert cosine(y, ref) > 0.99999
    # The committed onnxruntime output too (independent of the installed onnxruntime).
    exp = np.load(MODELS / "tiny_cnn_expected_ort.npy")
    assert np.abs(y - exp).max() < 1e-4
    t = ctx.last_timing
    assert t["compute_ms"] > 0
    engine.close()


@pytest.mark.parametrize("batch", [1, 3, 16])
def test_dynamic_batch_within_profile(tiny_engine, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    ctx = tiny_engine.create_context()
    y = ctx.infer({"images": x})["probs"]
    (ref,) = ort_run(TINY, {"images": x})
    assert y.shape == (batch, 10)
    assert np.abs(y - ref).max() < 1e-4


def test_batch_outside_profile_raises(tiny_engine):
    ctx = tiny_engine.create_context()
    with pytest.raises(ramjet.InvalidArgumentError) as ei:
        ctx.infer({"images": np.zeros((17, 3, 32, 32), np.float32)})
    assert "images" in str(ei.value)


def test_outputs_are_independent_arrays(tiny_engine, tiny_input):
    ctx = tiny_engine.create_context()
    a = ctx.infer({"images": tiny_input})["probs"]
    b = ctx.infer({"images": tiny_input * 0.5})["probs"]
    assert not np.shares_memory(a, b)
    assert not np.allclose(a, b)
    a2 = ctx.infer({"images": tiny_input})["probs"]
    np.testing.assert_array_equal(a, a2)


def test_plan_bytes_and_report(tiny_graph, tiny_input):
    plan = ramjet.build(tiny_graph, device="cpu")
    r = plan.report
    assert r.nodes_in == tiny_graph.num_nodes
    assert r.weight_bytes > 0 and r.build_ms > 0
    assert "plan" in str(r) or len(str(r)) > 0
    data = plan.to_bytes()
    assert len(data) == plan.nbytes
    e = ramjet.Engine.from_bytes(data)
    y = e.create_context().infer({"images": tiny_input[:1]})["probs"]
    (ref,) = ort_run(TINY, {"images": tiny_input[:1]})
    assert np.abs(y - ref).max() < 1e-4


def test_zero_copy_host_path_with_set_tensor_address(tiny_engine, tiny_input):
    # CPU engines take numpy arrays as addresses: no copies, like device buffers on CUDA.
    ctx = tiny_engine.create_context()
    x = np.ascontiguousarray(tiny_input)
    ctx.set_tensor_address("images", x)
    assert ctx.tensor_shape("probs") == (x.shape[0], 10)
    y = np.full((x.shape[0], 10), np.nan, np.float32)
    ctx.set_tensor_address("probs", y)
    ctx.execute_async()
    (ref,) = ort_run(TINY, {"images": x})
    assert np.abs(y - ref).max() < 1e-4


def test_lists_take_the_input_dtype(tiny_engine, tiny_input):
    ctx = tiny_engine.create_context()
    y = ctx.infer({"images": tiny_input[:1].tolist()})["probs"]
    (ref,) = ort_run(TINY, {"images": tiny_input[:1]})
    assert np.abs(y - ref).max() < 1e-4


def test_build_logs_to_python_logging(tiny_graph, caplog):
    with caplog.at_level(logging.INFO, logger="ramjet"):
        ramjet.build(tiny_graph, device="cpu")
    msgs = [r.getMessage() for r in caplog.records if r.name == "ramjet"]
    assert any("building for cpu" in m for m in msgs), msgs


def test_progress_callback(tiny_graph):
    seen = []
    ramjet.build(tiny_graph, device="cpu", progress=lambda d, t, s: seen.append((d, t, s)))
    assert seen, "the builder reports its stages through the callback"
    for d, t, s in seen:
        assert isinstance(d, int) and isinstance(t, int) and isinstance(s, str) and 0 <= d <= t
    assert seen[-1] == (1, 1, "encode")

    def boom(d, t, s):
        raise RuntimeError("callback failure")

    # An exception in the callback is reported (unraisable), never crashes or aborts the build.
    plan = ramjet.build(tiny_graph, device="cpu", progress=boom)
    assert plan.nbytes > 0


def test_precisions_listed():
    assert "fp32" in ramjet.PRECISIONS and "fp16" in ramjet.PRECISIONS


def test_fp16_build_on_cpu_is_close(tiny_graph, tiny_input):
    try:
        plan = ramjet.build(tiny_graph, device="cpu", precision="fp16",
                            profiles={"images": ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))})
    except ramjet.UnsupportedError as e:  # the CPU backend may refuse fp16; it must say so
        assert "fp16" in str(e).lower() or "half" in str(e).lower() or "f16" in str(e).lower()
        return
    e = ramjet.Engine.from_bytes(plan.to_bytes())
    assert e.info["precision"] == "fp16"
    assert e.inputs[0].dtype == np.float32  # I/O stays fp32
    y = e.create_context().infer({"images": tiny_input})["probs"]
    (ref,) = ort_run(TINY, {"images": tiny_input})
    assert cosine(y, ref) > 0.999
    assert np.abs(y - ref).max() < 2e-2


def test_fp16_reduced_io_build_takes_and_returns_float16(tiny_graph, tiny_input):
    profiles = {"images": ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))}
    plan = ramjet.build(tiny_graph, device="cpu", precision="fp16", profiles=profiles, reduced_io=True)
    e = ramjet.Engine.from_bytes(plan.to_bytes())
    assert e.inputs[0].dtype == np.float16 and e.outputs[0].dtype == np.float16
    y = e.create_context().infer({"images": tiny_input.astype(np.float16)})["probs"]
    assert y.dtype == np.float16
    base = ramjet.Engine.from_bytes(ramjet.build(tiny_graph, device="cpu", precision="fp16",
                                                 profiles=profiles).to_bytes())
    want = base.create_context().infer({"images": tiny_input})["probs"]
    # The same computation, the output rounded to float16 (Softmax stays fp32 inside).
    assert np.array_equal(y, want.astype(np.float16))
    with pytest.raises(ramjet.InvalidArgumentError):
        ramjet.BuildOptions(precision="fp32", reduced_io=True)


def test_detector_matches_onnxruntime(tmp_path):
    graph = ramjet.import_onnx(str(DETECTOR))
    assert graph.inputs[0].shape == ("batch", 3, "height", "width")  # size-agnostic export
    plan = ramjet.build(graph, device="cpu", profiles={"images": (1, 3, 640, 640)})
    path = tmp_path / "detector.plan"
    plan.save(str(path))
    engine = ramjet.Engine.load(str(path))
    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    y = engine.create_context().infer({"images": x})
    (ref,) = ort_run(DETECTOR, {"images": x})
    out = y[engine.outputs[0].name]
    assert out.shape == ref.shape
    scale = np.abs(ref).max()
    rel = np.abs(out - ref).max() / scale
    assert rel < 1e-4, rel
    assert cosine(out, ref) > 0.99999


def test_fp8_needs_ranges_and_defaults_to_minmax(tiny_graph):
    assert "fp8" in ramjet.PRECISIONS
    assert ramjet.BuildOptions(precision="fp8").calibration_method == "minmax"
    assert ramjet.BuildOptions(precision="int8").calibration_method == "entropy"
    assert ramjet.BuildOptions(precision="fp8", calibration_method="mse").calibration_method == "mse"
    with pytest.raises(ramjet.InvalidArgumentError) as e:
        ramjet.build(tiny_graph, device="cpu", precision="fp8")
    assert "fp8 needs activation ranges" in str(e.value)
