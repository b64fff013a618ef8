"""Exceptions raised by ramjet: one class per C++ ``StatusCode``, all under :class:`RamjetError`.

Each carries the C++ Status message as ``str(exc)`` and the code as ``exc.code`` (the
StatusCode name, e.g. ``"kInvalidArgument"``). Several also derive from the matching built-in
exception so ordinary ``except ValueError`` / ``except OSError`` handlers work.
"""

from __future__ import annotations


class RamjetError(Exception):
    """Base class of every ramjet error. ``code`` is the C++ StatusCode name."""

    code: str = "kInternal"
    code_value: int = 9

    def __init__(self, message: str, code: str | None = None, code_value: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if code_value is not None:
            self.code_value = code_value


class InvalidArgumentError(RamjetError, ValueError):
    """The caller passed something wrong (shape, dtype, name, option)."""


class InvalidModelError(RamjetError, ValueError):
    """A model file is malformed or uses something unsupported (lists every problem)."""


class InvalidPlanError(RamjetError, ValueError):
    """A plan file is malformed, corrupted, or built for another target."""


class NotFoundError(RamjetError, LookupError):
    """A named file, tensor or input does not exist."""


class UnsupportedError(RamjetError, NotImplementedError):
    """Valid input that ramjet cannot handle (yet)."""


class IoError(RamjetError, OSError):
    """The operating system refused a read or write."""


class OutOfMemoryError(RamjetError, MemoryError):
    """An allocation failed (host or device)."""


class DeviceError(RamjetError, RuntimeError):
    """A CUDA / cuDNN / cuBLAS failure, or no usable GPU."""


class InternalError(RamjetError, RuntimeError):
    """A bug in ramjet."""


# StatusCode value -> class; the order of include/ramjet/status.h.
_BY_CODE = {
    1: InvalidArgumentError,
    2: InvalidModelError,
    3: InvalidPlanError,
    4: NotFoundError,
    5: UnsupportedError,
    6: IoError,
    7: OutOfMemoryError,
    8: DeviceError,
    9: InternalError,
}


_NAMES = {1: "kInvalidArgument", 2: "kInvalidModel", 3: "kInvalidPlan", 4: "kNotFound",
          5: "kUnsupported", 6: "kIoError", 7: "kOutOfMemory", 8: "kDeviceError", 9: "kInternal"}


def _make(code_value: int, code_name: str, message: str) -> RamjetError:
    """Used by the extension to turn a C++ Status into an exception instance.

    ``code`` is the StatusCode enumerator name ("kNotFound"); ``status_name`` is the C++
    statusCodeName() text ("not found").
    """
    cls = _BY_CODE.get(code_value, RamjetError)
    e = cls(message, _NAMES.get(code_value, code_name), code_value)
    e.status_name = code_name
    return e


__all__ = [
    "RamjetError",
    "InvalidArgumentError",
    "InvalidModelError",
    "InvalidPlanError",
    "NotFoundError",
    "UnsupportedError",
    "IoError",
    "OutOfMemoryError",
    "DeviceError",
    "InternalError",
]
