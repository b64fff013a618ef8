"""Plain value types the extension returns (kept in Python so they print and compare well)."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple, Union

Dim = Union[int, str, None]


class TensorInfo(NamedTuple):
    """An engine or graph input/output: name, numpy dtype, and shape.

    ``shape`` holds ints for known dims, the symbol (a str such as ``"batch"``) for symbolic
    ones and None for unnamed unknowns; ``shape`` itself is None when even the rank is unknown.
    """

    name: str
    dtype: Any
    shape: Optional[Tuple[Dim, ...]]


class BuildReport:
    """What ramjet.build() did. Attributes mirror the C++ BuildReport; str() is its summary."""

    def __init__(self, fields: dict):
        self._fields = dict(fields)
        for k, v in fields.items():
            setattr(self, k, v)

    def as_dict(self) -> dict:
        return dict(self._fields)

    def __str__(self) -> str:
        return self._fields.get("summary", "")

    def __repr__(self) -> str:
        f = self._fields
        return (f"<BuildReport nodes {f.get('nodes_in')} -> {f.get('nodes_out')}, "
                f"weights {f.get('weight_bytes')} B, {f.get('build_ms', 0):.1f} ms>")
