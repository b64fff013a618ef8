#!/usr/bin/env bash
# Installs what ramjet needs to build and test on a fresh Debian 12 machine (idempotent).
# Usage: scripts/setup_deps.sh [--python]   (--python also installs the PyPI test tools)
set -euo pipefail
pkgs=(cmake ninja-build g++ clang ccache protobuf-compiler libprotobuf-dev libonnx-dev libonnx-testdata
      libgtest-dev libgmock-dev libcli11-dev libflatbuffers-dev flatbuffers-compiler nlohmann-json3-dev
      libstb-dev python3-numpy libgrpc++-dev protobuf-compiler-grpc pkg-config libclang-rt-14-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev)  # video I/O: headers at build time, dlopen'ed at run time
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# cudnn-frontend (header-only cuDNN graph API, PyPI wheel) for the CUDA backend's fused convolutions.
if [ -x /usr/local/cuda/bin/nvcc ] && ! python3 -c "import sysconfig,os,sys; sys.exit(not os.path.exists(sysconfig.get_paths()['purelib'] + '/include/cudnn_frontend.h'))"; then
  echo "[setup] installing nvidia-cudnn-frontend (headers) from PyPI"
  python3 -m pip install -q --no-deps nvidia-cudnn-frontend 2>/dev/null || python3 -m pip install -q --no-deps --break-system-packages nvidia-cudnn-frontend
fi
if [ "${1:-}" = "--python" ]; then
  PY=${PYTHON:-python3}
  if ! $PY -c "import numpy, onnx, onnxruntime, pycocotools" 2>/dev/null; then
    echo "[setup] installing numpy onnx onnxruntime pycocotools from PyPI for $PY"
    $PY -m pip install -q numpy onnx onnxruntime pycocotools 2>/dev/null || $PY -m pip install -q --break-system-packages numpy onnx onnxruntime pycocotools
  fi
  # Python bindings (docs/PYTHON.md): pybind11 builds ramjet._ramjet, pytest runs python/tests.
  if ! $PY -c "import pybind11, pytest" 2>/dev/null; then
    echo "[setup] installing pybind11 pytest from PyPI for $PY"
    $PY -m pip install -q pybind11 pytest 2>/dev/null || $PY -m pip install -q --break-system-packages pybind11 pytest
  fi
fi
# `ramjet serve` is tested with PyPI's tritonclient (tests/serve; skipped when it is absent).
if [ "${1:-}" = "--python" ]; then
  PY=${PYTHON:-python3}
  if ! $PY -c "import tritonclient.http, tritonclient.grpc" 2>/dev/null; then
    echo "[setup] installing tritonclient[http,grpc] from PyPI for $PY"
    $PY -m pip install -q 'tritonclient[http,grpc]' 2>/dev/null || $PY -m pip install -q --break-system-packages 'tritonclient[http,grpc]'
  fi
fi
