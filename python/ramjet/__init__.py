"""ramjet: ONNX -> optimized engine (plan file) -> fast inference, from Python.

The same workflow as the C++ API and the ``ramjet`` CLI, thin over the C++ library::

    import numpy as np, ramjet
    graph = ramjet.import_onnx("model.onnx")
    plan = ramjet.build(graph, ramjet.BuildOptions(device="cuda", precision="fp16"))
    plan.save("model.plan")
    engine = ramjet.Engine.load("model.plan")
    ctx = engine.create_context()
    outputs = ctx.infer({"images": np.zeros((1, 3, 224, 224), np.float32)})

Device tensors (PyTorch, CuPy, anything with ``__cuda_array_interface__`` or DLPack) go
through ``ctx.infer(..., stream=...)`` without host copies. Errors are ramjet.RamjetError
subclasses carrying the C++ message; log messages go to ``logging.getLogger("ramjet")``.
"""

from __future__ import annotations

import logging as _logging
import os as _os
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from . import errors
from ._types import BuildReport, TensorInfo
from .errors import (DeviceError, InternalError, InvalidArgumentError, InvalidModelError,
                     InvalidPlanError, IoError, NotFoundError, OutOfMemoryError, RamjetError,
                     UnsupportedError)
from ._ramjet import (DeviceArray, Engine, ExecutionContext, Graph, Plan, __version__,
                      cuda_compiled, cuda_device_count, import_onnx, import_onnx_bytes)
from . import _ramjet

_logging.getLogger("ramjet").addHandler(_logging.NullHandler())

#: Precision names this build knows ("fp32", "fp16", and more as the C++ library adds them).
PRECISIONS: Tuple[str, ...] = tuple(_ramjet._precisions())
DEVICES: Tuple[str, ...] = ("cpu", "cuda")


def cuda_available() -> bool:
    """True when ramjet was built with CUDA and a GPU is visible."""
    return bool(cuda_compiled) and cuda_device_count() > 0


class Calibrator:
    """Base class for INT8 calibration data, as TensorRT's IInt8Calibrator.

    Subclass it and implement :meth:`get_batch`, returning ``{input name: numpy array}`` for
    the next batch or ``None`` when the data is exhausted. Optionally override
    :attr:`num_batches` (for progress) and :meth:`reset` (to rewind).
    """

    def get_batch(self) -> Optional[Dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError("Calibrator subclasses implement get_batch()")

    @property
    def num_batches(self) -> int:
        return 0

    def reset(self) -> None:
        raise UnsupportedError("this calibrator cannot rewind", "kUnsupported", 5)


def _shape3(name: str, value: Any) -> Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]:
    if isinstance(value, (tuple, list)) and len(value) == 3 and all(
            isinstance(v, (tuple, list)) for v in value):
        mn, opt, mx = (tuple(v) for v in value)
    elif isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        mn = opt = mx = tuple(value)  # one fixed shape
    else:
        raise InvalidArgumentError(
            f"profiles['{name}'] must be (min, opt, max) shapes or one shape, got {value!r}",
            "kInvalidArgument", 1)
    if not (len(mn) == len(opt) == len(mx)):
        raise InvalidArgumentError(f"profiles['{name}']: min, opt and max must have the same rank",
                                   "kInvalidArgument", 1)
    for a, b, c in zip(mn, opt, mx):
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (a, b, c)):
            raise InvalidArgumentError(f"profiles['{name}']: dims must be ints", "kInvalidArgument", 1)
        if not (0 <= a <= b <= c):
            raise InvalidArgumentError(
                f"profiles['{name}']: need 0 <= min <= opt <= max per dim, got {mn} {opt} {mx}",
                "kInvalidArgument", 1)
    return mn, opt, mx


class BuildOptions:
    """Options for :func:`build` (the C++ ramjet::BuildOptions).

    Args:
        device: "cpu" or "cuda".
        precision: one of :data:`PRECISIONS` ("fp32", "fp16", ...). FP16 stores weights and
            computes activations in half precision (FP32 accumulation); I/O stays FP32.
        profiles: ``{input: (min, opt, max)}`` shapes for inputs with symbolic dims, or
            ``{input: shape}`` for one fixed shape. Inputs without one get 1 per symbolic dim.
        timing_cache: path of a tactic timing cache, read if present and updated after the build.
        calibrator: a :class:`Calibrator` for INT8 builds.
        allow_cpu_fallback: run nodes the device backend lacks on the CPU instead of failing.
        fold_constants, optimize: build-time constant folding and the graph optimizer.
        disabled_passes: optimizer passes to skip by name ("all" skips every one).
        timing_iterations: timed runs per tactic candidate.
        max_workspace_bytes: largest kernel workspace the builder may pick.
        device_index: which GPU.
        progress: ``callable(done, total, stage)`` called as the build advances.
        precision_overrides: per-layer precision, "NAME_OR_OP:fp32|fp16|bf16|int8|fp8".
        calibration_cache: INT8/FP8 calibration cache file (read when it matches, else written).
        calibration_method: "entropy", "minmax", "percentile" or "mse" (default: "minmax" for
            precision="fp8", "entropy" otherwise).
        calibration_batches: batches to draw from the calibrator (0: until exhausted).
        activation_amax: explicit activation ranges {tensor name: max |x|}.
        accuracy_budget: INT8 only, with a calibrator: the most accuracy to lose against the
            FP32 reference, as a fraction (0.005 = 0.5%); the layers whose INT8 costs most stay
            FP16 until the measured loss fits (report.accuracy_budget says which). 0: off.
        accuracy_metric: "auto", "top1", "cosine", "rel-l2", or a callable
            ``(candidate, reference) -> loss`` over lists (per batch) of lists of numpy outputs.
        accuracy_samples: calibration batches the budget is measured on.
        reduced_io: fp16/bf16 builds: float inputs and outputs in that precision instead of
            float32 (numpy float16 in and out; no boundary casts).
    """

    def __init__(self, device: str = "cpu", precision: str = "fp32",
                 profiles: Optional[Mapping[str, Any]] = None, timing_cache: Optional[str] = None,
                 calibrator: Optional[Calibrator] = None, allow_cpu_fallback: bool = False,
                 fold_constants: bool = True, optimize: bool = True,
                 disabled_passes: Iterable[str] = (), timing_iterations: int = 10,
                 max_workspace_bytes: int = 1 << 30, device_index: int = 0,
                 progress: Optional[Callable[[int, int, str], None]] = None,
                 precision_overrides: Iterable[str] = (), calibration_cache: Optional[str] = None,
                 calibration_method: Optional[str] = None, calibration_batches: int = 0,
                 activation_amax: Optional[Mapping[str, float]] = None,
                 accuracy_budget: float = 0.0, accuracy_metric: Any = "auto", accuracy_samples: int = 8,
                 reduced_io: bool = False):
        self.device = device
        self.precision = precision
        self.profiles = dict(profiles or {})
        self.timing_cache = timing_cache
        self.calibrator = calibrator
        self.allow_cpu_fallback = allow_cpu_fallback
        self.fold_constants = fold_constants
        self.optimize = optimize
        self.disabled_passes = list(disabled_passes)
        self.timing_iterations = timing_iterations
        self.max_workspace_bytes = max_workspace_bytes
        self.device_index = device_index
        self.progress = progress
        self.precision_overrides = list(precision_overrides)
        self.calibration_cache = calibration_cache
        self.calibration_method = (calibration_method if calibration_method is not None
                                   else "minmax" if precision == "fp8" else "entropy")
        self.calibration_batches = calibration_batches
        self.activation_amax = dict(activation_amax or {})
        self.accuracy_budget = accuracy_budget
        self.accuracy_metric = accuracy_metric
        self.accuracy_samples = accuracy_samples
        self.reduced_io = reduced_io
        self.validate()

    def validate(self) -> None:
        """Raises InvalidArgumentError naming the first bad option."""
        def bad(msg: str) -> InvalidArgumentError:
            return InvalidArgumentError(msg, "kInvalidArgument", 1)
        if self.device not in DEVICES:
            raise bad(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise bad(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.profiles, Mapping):
            raise bad("profiles must be a dict {input name: (min, opt, max)}")
        for k, v in self.profiles.items():
            if not isinstance(k, str):
                raise bad(f"profiles keys must be input names (str), got {k!r}")
            _shape3(k, v)
        if self.timing_cache is not None and not isinstance(self.timing_cache, (str, _os.PathLike)):
            raise bad("timing_cache must be a path")
        if self.calibrator is not None and not callable(getattr(self.calibrator, "get_batch", None)):
            raise bad("calibrator must have a get_batch() method (subclass ramjet.Calibrator)")
        for name in ("timing_iterations", "max_workspace_bytes", "device_index"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise bad(f"{name} must be a non-negative int, got {v!r}")
        if self.timing_iterations < 1:
            raise bad("timing_iterations must be >= 1")
        if self.progress is not None and not callable(self.progress):
            raise bad("progress must be callable(done, total, stage)")
        for o in self.precision_overrides:
            if not isinstance(o, str) or ":" not in o or o.rsplit(":", 1)[1] not in PRECISIONS:
                raise bad(f"precision_overrides entries are 'NAME_OR_OP:precision' with a precision in "
                          f"{PRECISIONS}, got {o!r}")
        if self.calibration_method not in ("minmax", "percentile", "entropy", "mse"):
            raise bad(f"calibration_method must be minmax, percentile, entropy or mse, got {self.calibration_method!r}")
        if not isinstance(self.accuracy_budget, (int, float)) or not 0 <= self.accuracy_budget < 1:
            raise bad(f"accuracy_budget must be a fraction in [0, 1) (0.005 = 0.5%), got {self.accuracy_budget!r}")
        if self.accuracy_budget and self.precision != "int8":
            raise bad("accuracy_budget applies to precision='int8'")
        if not callable(self.accuracy_metric) and self.accuracy_metric not in ("auto", "top1", "cosine", "rel-l2"):
            raise bad(f"accuracy_metric must be auto, top1, cosine, rel-l2 or a callable, got {self.accuracy_metric!r}")
        if not isinstance(self.reduced_io, bool):
            raise bad(f"reduced_io must be a bool, got {self.reduced_io!r}")
        if self.reduced_io and self.precision not in ("fp16", "bf16"):
            raise bad("reduced_io applies to precision='fp16' or 'bf16'")
        if not isinstance(self.accuracy_samples, int) or self.accuracy_samples < 1:
            raise bad("accuracy_samples must be a positive int")
        if not isinstance(self.calibration_batches, int) or self.calibration_batches < 0:
            raise bad("calibration_batches must be a non-negative int (0: until the calibrator is exhausted)")
        for k, v in self.activation_amax.items():
            if not isinstance(k, str) or not isinstance(v, (int, float)) or not v > 0:
                raise bad(f"activation_amax maps tensor names to positive floats, got {k!r}: {v!r}")

    def __repr__(self) -> str:
        return (f"BuildOptions(device={self.device!r}, precision={self.precision!r}, "
                f"profiles={self.profiles!r}, timing_cache={self.timing_cache!r})")


def build(graph: Graph, options: Optional[BuildOptions] = None, **kwargs: Any) -> Plan:
    """Builds an engine plan from an imported graph (releases the GIL while building).

    ``ramjet.build(graph, BuildOptions(...))`` or ``ramjet.build(graph, device="cuda", ...)``.
    """
    if options is None:
        options = BuildOptions(**kwargs)
    elif kwargs:
        raise InvalidArgumentError("pass either a BuildOptions or keyword options, not both",
                                   "kInvalidArgument", 1)
    if not isinstance(graph, Graph):
        raise InvalidArgumentError(f"build() needs a ramjet.Graph (from import_onnx), got "
                                   f"{type(graph).__name__}", "kInvalidArgument", 1)
    options.validate()
    profiles = {k: _shape3(k, v) for k, v in options.profiles.items()}
    # Mixed-precision options travel only when set, so defaults work with any C++ API version.
    extra: Dict[str, Any] = {}
    if options.precision_overrides:
        extra["precision_overrides"] = list(options.precision_overrides)
    if options.reduced_io:
        extra["reduced_io"] = True
    if options.calibration_cache:
        extra["calibration_cache"] = _os.fspath(options.calibration_cache)
    if options.calibration_method != "entropy":
        extra["calibration_method"] = options.calibration_method
    if options.calibration_batches:
        extra["calibration_batches"] = options.calibration_batches
    if options.activation_amax:
        extra["activation_amax"] = {k: float(v) for k, v in options.activation_amax.items()}
    if options.accuracy_budget:
        extra["accuracy_budget"] = float(options.accuracy_budget)
        extra["accuracy_samples"] = options.accuracy_samples
        if callable(options.accuracy_metric):
            extra["accuracy_loss"] = options.accuracy_metric
        else:
            extra["accuracy_metric"] = options.accuracy_metric
    return _ramjet._build(graph, options.device, options.device_index, options.precision, profiles,
                          _os.fspath(options.timing_cache) if options.timing_cache else "",
                          options.allow_cpu_fallback, options.fold_constants, options.optimize,
                          options.disabled_passes, options.timing_iterations,
                          options.max_workspace_bytes, options.calibrator, options.progress, extra)


__all__ = [
    "__version__", "import_onnx", "import_onnx_bytes", "build", "BuildOptions", "Calibrator",
    "Graph", "Plan", "Engine", "ExecutionContext", "DeviceArray", "TensorInfo", "BuildReport",
    "PRECISIONS", "DEVICES", "cuda_available", "cuda_compiled", "cuda_device_count", "errors",
    "RamjetError", "InvalidArgumentError", "InvalidModelError", "InvalidPlanError",
    "NotFoundError", "UnsupportedError", "IoError", "OutOfMemoryError", "DeviceError",
    "InternalError",
]
