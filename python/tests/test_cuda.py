"""CUDA engines from Python: host path, zero-copy device path with PyTorch / CuPy (DLPack and
__cuda_array_interface__), streams. Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

import ramjet
from conftest import TINY, cosine, ort_run

pytestmark = pytest.mark.skipif(not ramjet.cuda_available(), reason="needs a CUDA GPU")

PROFILE = {"images": ((1, 3, 32, 32), (8, 3, 32, 32), (64, 3, 32, 32))}


@pytest.fixture(scope="module")
def cuda_engine(tmp_path_factory):
    g = ramjet.import_onnx(str(TINY))
    plan = ramjet.build(g, device="cuda", profiles=PROFILE)
    path = tmp_path_factory.mktemp("cuda") / "tiny_cuda.plan"
    plan.save(str(path))
    e = ramjet.Engine.load(str(path))
    yield e
    e.close()


@pytest.fixture(scope="module")
def torch():
    t = pytest.importorskip("torch")
    if not t.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return t


def _x(batch=8, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)


def test_host_path_matches_onnxruntime(cuda_engine):
    assert cuda_engine.device == "cuda"
    x = _x()
    y = cuda_engine.create_context().infer({"images": x})["probs"]
    (ref,) = ort_run(TINY, {"images": x})
    assert np.abs(y - ref).max() < 1e-3
    assert cosine(y, ref) > 0.99999


def test_fp16_build_accuracy():
    g = ramjet.import_onnx(str(TINY))
    e = ramjet.Engine.from_bytes(ramjet.build(g, device="cuda", precision="fp16", profiles=PROFILE).to_bytes())
    assert e.info["precision"] == "fp16"
    x = _x(16, 1)
    y = e.create_context().infer({"images": x})["probs"]
    (ref,) = ort_run(TINY, {"images": x})
    c = cosine(y, ref)
    print(f"fp16 vs onnxruntime fp32: max abs {np.abs(y - ref).max():.3e} cosine {c:.6f}")
    assert c > 0.999


def test_torch_in_torch_out_zero_copy(cuda_engine, torch):
    x = _x()
    xt = torch.from_numpy(x).cuda()
    ctx = cuda_engine.create_context()
    out = ctx.infer({"images": xt})
    y = out["probs"]
    assert isinstance(y, torch.Tensor) and y.is_cuda and tuple(y.shape) == (8, 10)
    torch.cuda.synchronize()
    ref = cuda_engine.create_context().infer({"images": x})["probs"]
    np.testing.assert_allclose(y.cpu().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_preallocated_outputs_are_written_in_place(cuda_engine, torch):
    xt = torch.from_numpy(_x()).cuda()
    yt = torch.full((8, 10), float("nan"), device="cuda")
    ptr = yt.data_ptr()
    ctx = cuda_engine.create_context()
    out = ctx.infer({"images": xt}, outputs={"probs": yt})
    assert out["probs"] is yt and yt.data_ptr() == ptr
    torch.cuda.synchronize()
    assert torch.isfinite(yt).all()


def test_torch_stream_object_and_int_handle(cuda_engine, torch):
    ctx = cuda_engine.create_context()
    ref = cuda_engine.create_context().infer({"images": _x(4, 2)})["probs"]
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        xt = torch.from_numpy(_x(4, 2)).cuda()
        y1 = ctx.infer({"images": xt}, stream=s)["probs"]
        y2 = ctx.infer({"images": xt}, stream=s.cuda_stream)["probs"]
    s.synchronize()
    np.testing.assert_allclose(y1.cpu().numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2.cpu().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_set_tensor_address_execute_async(cuda_engine, torch):
    ctx = cuda_engine.create_context()
    xt = torch.from_numpy(_x(2, 3)).cuda()
    yt = torch.empty((2, 10), device="cuda")
    ctx.set_tensor_address("images", xt)
    ctx.set_tensor_address("probs", yt.data_ptr())  # a raw int address works too
    ctx.execute_async(torch.cuda.current_stream())
    torch.cuda.synchronize()
    ref = cuda_engine.create_context().infer({"images": _x(2, 3)})["probs"]
    np.testing.assert_allclose(yt.cpu().numpy(), ref, rtol=1e-5, atol=1e-6)


class _DlpackOnly:
    """Hides __cuda_array_interface__ so the DLPack import path is the one exercised."""

    def __init__(self, t):
        self._t = t

    def __dlpack__(self, stream=None):
        return self._t.__dlpack__(stream=stream)

    def __dlpack_device__(self):
        return self._t.__dlpack_device__()


def test_dlpack_import_and_device_array_export(cuda_engine, torch):
    x = _x(3, 4)
    xt = torch.from_numpy(x).cuda()
    ctx = cuda_engine.create_context()
    out = ctx.infer({"images": _DlpackOnly(xt)})["probs"]
    # Not a torch input: the output is a ramjet.DeviceArray exporting both protocols.
    assert isinstance(out, ramjet.DeviceArray)
    assert out.shape == (3, 10) and out.dtype == np.float32
    cai = out.__cuda_array_interface__
    assert cai["data"][0] == out.ptr and cai["typestr"] == "<f4"
    back = torch.from_dlpack(out)  # zero-copy view
    assert back.data_ptr() == out.ptr
    ref = cuda_engine.create_context().infer({"images": x})["probs"]
    np.testing.assert_allclose(back.cpu().numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    # The DeviceArray outlives its engine's closing while a view holds it.
    del out
    torch.cuda.synchronize()
    assert torch.isfinite(back).all()


def test_device_errors(cuda_engine, torch):
    ctx = cuda_engine.create_context()
    with pytest.raises(ramjet.InvalidArgumentError, match="f32"):
        ctx.infer({"images": torch.zeros((2, 3, 32, 32), device="cuda", dtype=torch.float16)})
    with pytest.raises(ramjet.InvalidArgumentError, match="contiguous"):
        ctx.infer({"images": torch.zeros((2, 3, 32, 64), device="cuda")[..., ::2]})
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.infer({"images": torch.zeros((2, 3, 32, 32), device="cuda")},
                  outputs={"probs": torch.zeros((3, 10), device="cuda")})
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.infer({"images": torch.zeros((2, 3, 31, 32), device="cuda")})
    with pytest.raises(ramjet.InvalidArgumentError):
        ctx.set_tensor_address("images", np.zeros((2, 3, 32, 32), np.float32))
    # Still usable.
    out = ctx.infer({"images": torch.zeros((2, 3, 32, 32), device="cuda")})["probs"]
    torch.cuda.synchronize()
    assert out.shape == (2, 10)


def test_close_with_live_outputs(torch):
    g = ramjet.import_onnx(str(TINY))
    e = ramjet.Engine.from_bytes(ramjet.build(g, device="cuda", profiles=PROFILE).to_bytes())
    out = e.create_context().infer({"images": _DlpackOnly(torch.zeros((1, 3, 32, 32), device="cuda"))})["probs"]
    e.close()
    assert out.numpy().shape == (1, 10)  # the buffer keeps what it needs alive


def test_cupy_round_trip(cuda_engine):
    cp = pytest.importorskip("cupy")
    x = _x(5, 5)
    xc = cp.asarray(x)
    ctx = cuda_engine.create_context()
    y = ctx.infer({"images": xc}, stream=cp.cuda.get_current_stream())["probs"]
    assert isinstance(y, cp.ndarray)
    cp.cuda.get_current_stream().synchronize()
    ref = cuda_engine.create_context().infer({"images": x})["probs"]
    np.testing.assert_allclose(cp.asnumpy(y), ref, rtol=1e-5, atol=1e-6)
    # DeviceArray -> CuPy without a copy.
    d = ctx.infer({"images": _DlpackOnly_cupy(xc)})["probs"]
    v = cp.asarray(d)
    assert v.data.ptr == d.ptr
    np.testing.assert_allclose(cp.asnumpy(v), ref, rtol=1e-5, atol=1e-6)


class _DlpackOnly_cupy(_DlpackOnly):
    pass
