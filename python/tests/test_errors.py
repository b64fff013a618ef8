"""Bad input gets a RamjetError subclass naming the thing and the reason -- never a crash."""

from __future__ import annotations

import numpy as np
import pytest

import ramjet
from conftest import TINY


def test_error_hierarchy():
    assert issubclass(ramjet.InvalidArgumentError, ramjet.RamjetError)
    assert issubclass(ramjet.InvalidArgumentError, ValueError)
    assert issubclass(ramjet.NotFoundError, LookupError)
    assert issubclass(ramjet.IoError, OSError)
    assert issubclass(ramjet.DeviceError, RuntimeError)


def test_missing_model_file(tmp_path):
    with pytest.raises(ramjet.RamjetError) as ei:
        ramjet.import_onnx(str(tmp_path / "nope.onnx"))
    assert "nope.onnx" in str(ei.value)
    assert isinstance(ei.value, (ramjet.NotFoundError, ramjet.IoError))
    assert ei.value.code in ("kNotFound", "kIoError")


def test_malformed_model(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x08\x07garbage that is not a model" * 10)
    with pytest.raises(ramjet.InvalidModelError) as ei:
        ramjet.import_onnx(str(p))
    assert ei.value.code == "kInvalidModel"
    assert str(ei.value)


def test_truncated_model_bytes():
    data = TINY.read_bytes()
    with pytest.raises(ramjet.InvalidModelError):
        ramjet.import_onnx_bytes(data[: len(data) // 2])


def test_corrupt_plan(tmp_path, tiny_plan_path):
    data = bytearray(tiny_plan_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p = tmp_path / "corrupt.plan"
    p.write_bytes(bytes(data))
    with pytest.raises(ramjet.InvalidPlanError) as ei:
        ramjet.Engine.load(str(p))
    assert str(ei.value)
    with pytest.raises(ramjet.InvalidPlanError):
        ramjet.Engine.from_bytes(b"not a plan at all")
    with pytest.raises(ramjet.RamjetError):
        ramjet.Engine.load(str(tmp_path / "missing.plan"))


def test_wrong_dtype(tiny_engine, tiny_input):
    ctx = tiny_engine.create_context()
    with pytest.raises(ramjet.InvalidArgumentError) as ei:
        ctx.infer({"images": tiny_input.astype(np.float64)})
    assert "images" in str(ei.value) and "float32" in str(ei.value)
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.infer({"images": tiny_input.astype(np.int32)})
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.infer({"images": np.array(["a", "b"])})
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.infer({"images": object()})


def test_wrong_shape(tiny_engine):
    ctx = tiny_engine.create_context()
    with pytest.raises(ramjet.InvalidArgumentError) as ei:
        ctx.infer({"images": np.zeros((1, 3, 31, 32), np.float32)})
    assert "images" in str(ei.value)
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.infer({"images": np.zeros((3, 32, 32), np.float32)})
    with pytest.raises(ramjet.RamjetError):
        ctx.infer({"images": np.zeros((0, 3, 32, 32), np.float32)})
    # The context still works after the errors.
    assert ctx.infer({"images": np.zeros((2, 3, 32, 32), np.float32)})["probs"].shape == (2, 10)


def test_missing_and_unknown_inputs(tiny_engine, tiny_input):
    ctx = tiny_engine.create_context()
    with pytest.raises(ramjet.InvalidArgumentError) as ei:
        ctx.infer({})
    assert "missing input 'images'" in str(ei.value)
    with pytest.raises(ramjet.NotFoundError) as ei:
        ctx.infer({"images": tiny_input, "extra": tiny_input})
    assert "extra" in str(ei.value)
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.infer([tiny_input])
    with pytest.raises(ramjet.NotFoundError):
        ctx.set_tensor_address("nope", 0)
    with pytest.raises(ramjet.NotFoundError):
        ctx.tensor_shape("nope")


def test_set_tensor_address_checks(tiny_engine, tiny_input):
    ctx = tiny_engine.create_context()
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.set_tensor_address("images", tiny_input.astype(np.float64))
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.set_tensor_address("images", np.asfortranarray(tiny_input[:, 0]))  # wrong rank/layout
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.set_tensor_address("images", "a string")
    ro = np.zeros((tiny_input.shape[0], 10), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.set_tensor_address("probs", ro)
    # Nothing bound for the output: enqueue must refuse, not write through a null pointer.
    ctx2 = tiny_engine.create_context()
    ctx2.set_tensor_address("images", np.ascontiguousarray(tiny_input))
    with pytest.raises(ramjet.InvalidArgumentError) as ei:
        ctx2.execute_async()
    assert "probs" in str(ei.value)


def test_closed_engine(tiny_plan_path, tiny_input):
    engine = ramjet.Engine.load(str(tiny_plan_path))
    ctx = engine.create_context()
    assert ctx.infer({"images": tiny_input})["probs"].shape[1] == 10
    engine.close()
    assert engine.closed
    engine.close()  # idempotent
    with pytest.raises(ramjet.InvalidArgumentError) as ei:
        ctx.infer({"images": tiny_input})
    assert "closed" in str(ei.value)
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.execute_async()
    with pytest.raises(ramjet.InvalidArgumentError):
        engine.create_context()
    # Metadata stays readable.
    assert engine.inputs[0].name == "images"
    assert "closed" in repr(engine)


def test_context_manager_closes(tiny_plan_path, tiny_input):
    with ramjet.Engine.load(str(tiny_plan_path)) as engine:
        ctx = engine.create_context()
        ctx.infer({"images": tiny_input})
    assert engine.closed
    with pytest.raises(ramjet.RamjetError):
        ctx.infer({"images": tiny_input})


def test_build_options_validation(tiny_graph):
    with pytest.raises(ramjet.InvalidArgumentError, match="device"):
        ramjet.BuildOptions(device="tpu")
    with pytest.raises(ramjet.InvalidArgumentError, match="precision"):
        ramjet.BuildOptions(precision="fp7")
    with pytest.raises(ramjet.InvalidArgumentError, match="profiles"):
        ramjet.BuildOptions(profiles={"images": ((1, 3, 32, 32), (4, 3, 32, 32))})
    with pytest.raises(ramjet.InvalidArgumentError, match="min <= opt <= max"):
        ramjet.BuildOptions(profiles={"images": ((8, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))})
    with pytest.raises(ramjet.InvalidArgumentError):
        ramjet.BuildOptions(timing_iterations=0)
    with pytest.raises(ramjet.InvalidArgumentError):
        ramjet.BuildOptions(calibrator=object())
    with pytest.raises(ramjet.InvalidArgumentError):
        ramjet.build("not a graph")
    with pytest.raises(ramjet.InvalidArgumentError):
        ramjet.build(tiny_graph, ramjet.BuildOptions(), device="cpu")
    # A profile naming no input, or of the wrong rank, is the builder's to reject.
    with pytest.raises(ramjet.RamjetError):
        ramjet.build(tiny_graph, profiles={"images": ((1, 3, 32), (1, 3, 32), (1, 3, 32))})


def test_bad_stream_argument(tiny_engine, tiny_input):
    ctx = tiny_engine.create_context()
    ctx.set_tensor_address("images", np.ascontiguousarray(tiny_input))
    ctx.set_tensor_address("probs", np.zeros((tiny_input.shape[0], 10), np.float32))
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.execute_async(stream=-1)
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.execute_async(stream="default")
    ctx.execute_async(stream=0)


@pytest.mark.skipif(ramjet.cuda_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_clear_error(tiny_graph):
    with pytest.raises(ramjet.RamjetError) as ei:
        ramjet.build(tiny_graph, device="cuda")
    msg = str(ei.value).lower()
    assert "cuda" in msg or "gpu" in msg or "device" in msg


def test_calibrator_is_checked(tiny_graph):
    class Data(ramjet.Calibrator):
        def get_batch(self):
            return None

    # Until the C++ API takes a calibrator, asking for one must fail loudly, never be ignored.
    try:
        ramjet.build(tiny_graph, device="cpu", calibrator=Data())
    except ramjet.UnsupportedError as e:
        assert "calibrator" in str(e)


def test_mixed_precision_option_validation():
    with pytest.raises(ramjet.InvalidArgumentError, match="precision_overrides"):
        ramjet.BuildOptions(precision_overrides=["Conv"])
    with pytest.raises(ramjet.InvalidArgumentError, match="precision_overrides"):
        ramjet.BuildOptions(precision_overrides=["Conv:fp7"])
    with pytest.raises(ramjet.InvalidArgumentError, match="calibration_method"):
        ramjet.BuildOptions(calibration_method="kl")
    with pytest.raises(ramjet.InvalidArgumentError, match="activation_amax"):
        ramjet.BuildOptions(activation_amax={"x": -1.0})
