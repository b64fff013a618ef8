"""Shared fixtures: the repository's models and CPU plans built once per session."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import ramjet

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
TINY = MODELS / "tiny_cnn.onnx"
DETECTOR = MODELS / "detector" / "detector.onnx"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def ort_run(path: pathlib.Path, feeds: dict) -> list:
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture(scope="session")
def tiny_graph():
    return ramjet.import_onnx(str(TINY))


@pytest.fixture(scope="session")
def tiny_plan_path(tmp_path_factory, tiny_graph):
    opts = ramjet.BuildOptions(device="cpu", profiles={"images": ((1, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))})
    plan = ramjet.build(tiny_graph, opts)
    path = tmp_path_factory.mktemp("plans") / "tiny_cnn.plan"
    plan.save(str(path))
    return path


@pytest.fixture()
def tiny_engine(tiny_plan_path):
    e = ramjet.Engine.load(str(tiny_plan_path))
    yield e
    e.close()


@pytest.fixture(scope="session")
def tiny_input() -> np.ndarray:
    return np.load(MODELS / "tiny_cnn_input.npy")
