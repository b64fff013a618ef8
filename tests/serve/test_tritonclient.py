#!/usr/bin/env python3
"""`ramjet serve` against PyPI's tritonclient (HTTP and gRPC), a client nobody here wrote.

Builds models/tiny_cnn.onnx (images [N,3,32,32] -> probs [N,10]) as a CPU plan with batch 1..16,
serves it from a temporary model repository and checks: health, metadata, config, infer with
JSON and binary tensors, errors (4xx with a reason), 64 concurrent clients with distinct inputs
(every response equals the single-request result from onnxruntime, or from the server run one
request at a time when onnxruntime is absent), Prometheus metrics, gRPC (when the plugin was
built), and graceful SIGTERM shutdown with requests in flight.

Usage: test_tritonclient.py RAMJET_BINARY SOURCE_DIR. Exit 77 (skip) without tritonclient.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:
    import numpy as np
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
except ImportError as e:  # pragma: no cover
    print("SKIP: tritonclient[http] / numpy not installed (pip install 'tritonclient[http,grpc]'):", e)
    sys.exit(77)
try:
    import tritonclient.grpc as grpcclient
except ImportError:
    grpcclient = None

RAMJET, SRC = sys.argv[1], sys.argv[2]
MODEL = "tiny"
MODEL16 = "tiny_fp16io"  # the same network built --fp16 --reduced-io: FP16 tensors in and out
failures = []


def check(cond, what):
    print(("PASS: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def start_server(repo, grpc, port=0, extra=()):
    cmd = [RAMJET, "serve", repo, "--http-port", str(port), "--http-threads", "96"] + list(extra)
    if grpc:
        cmd += ["--grpc-port", "0"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ports, lines = {}, []
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"(HTTP|gRPC) on [^:]+:(\d+)", line)
        if m:
            ports[m.group(1)] = int(m.group(2))
        if "HTTP" in ports and (not grpc or "gRPC" in ports):
            break
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [lines.append(l) for l in p.stdout], daemon=True).start()
    return p, ports, lines


def main():
    tmp = tempfile.mkdtemp(prefix="ramjet_serve_test_")
    repo = os.path.join(tmp, "repo")
    os.makedirs(os.path.join(repo, MODEL))
    plan = os.path.join(repo, MODEL, "model.plan")
    r = subprocess.run([RAMJET, "build", os.path.join(SRC, "models/tiny_cnn.onnx"), "-o", plan, "--device", "cpu",
                        "--min-shapes", "images:1x3x32x32", "--opt-shapes", "images:8x3x32x32",
                        "--max-shapes", "images:16x3x32x32"], capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL: build:", r.stdout, r.stderr)
        return 1
    with open(os.path.join(repo, MODEL, "config.json"), "w") as f:
        json.dump({"max_batch": 16, "max_queue_delay_us": 1000, "instances": 2}, f)
    os.makedirs(os.path.join(repo, MODEL16))
    r = subprocess.run([RAMJET, "build", os.path.join(SRC, "models/tiny_cnn.onnx"), "-o",
                        os.path.join(repo, MODEL16, "model.plan"), "--device", "cpu", "--fp16", "--reduced-io",
                        "--min-shapes", "images:1x3x32x32", "--opt-shapes", "images:8x3x32x32",
                        "--max-shapes", "images:16x3x32x32"], capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL: build --fp16 --reduced-io:", r.stdout, r.stderr)
        return 1

    plugin = os.path.join(os.path.dirname(os.path.realpath(RAMJET)), "libramjet_grpc.so")
    want_grpc = grpcclient is not None and os.path.exists(plugin)
    proc, ports, log = start_server(repo, want_grpc)
    if "HTTP" not in ports:
        print("FAIL: server did not start:", "".join(log))
        proc.kill()
        return 1
    url = "127.0.0.1:%d" % ports["HTTP"]
    try:
        run_checks(url, ports.get("gRPC"), want_grpc)
        fp16_io_checks(url)
        shutdown_check(proc, url)
    finally:
        if proc.poll() is None:
            proc.kill()
    reuseport_check(repo)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


def fp16_io_checks(url):
    """A --reduced-io model: FP16 metadata, FP16 tensors in and out (JSON and binary), answers
    within FP16 rounding of the FP32 model's; ramjet loadgen generates FP16 requests for it."""
    c = httpclient.InferenceServerClient(url)
    md = c.get_model_metadata(MODEL16)
    check(md["inputs"][0]["datatype"] == "FP16" and md["outputs"][0]["datatype"] == "FP16",
          "reduced-io metadata: %s" % json.dumps(md))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 32, 32), dtype=np.float32)
    want = None
    i = httpclient.InferInput("images", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    want = c.infer(MODEL, [i]).as_numpy("probs")
    for binary in (False, True):
        i = httpclient.InferInput("images", list(x.shape), "FP16")
        i.set_data_from_numpy(x.astype(np.float16), binary_data=binary)
        o = httpclient.InferRequestedOutput("probs", binary_data=binary)
        y = c.infer(MODEL16, [i], outputs=[o]).as_numpy("probs")
        err = float(np.abs(y.astype(np.float32) - want).max())
        check(y.dtype == np.float16 and y.shape == (2, 10) and err < 5e-3,
              "reduced-io infer %s: FP16 out, max abs error vs the FP32 model %.2e" % ("binary" if binary else "JSON", err))
    # FP32 data for the FP16 input is a 400 with the reason.
    i = httpclient.InferInput("images", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    try:
        c.infer(MODEL16, [i])
        check(False, "FP32 data for an FP16 input was accepted")
    except InferenceServerException as e:
        check("must be FP16, got FP32" in str(e), "FP32 data for an FP16 input refused: %s" % str(e)[:200])
    r = subprocess.run([RAMJET, "loadgen", "--url", url, "-m", MODEL16, "-c", "2", "-d", "0.3", "--warmup", "0.1",
                        "--check"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and " 0 mismatched" in r.stdout and "| 2 |" in r.stdout,
          "loadgen --check on the FP16 model: %s" % (r.stdout + r.stderr)[-300:])


def reference_fn(url):
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(os.path.join(SRC, "models/tiny_cnn.onnx"), providers=["CPUExecutionProvider"])
        return "onnxruntime", lambda x: sess.run(None, {"images": x})[0]
    except ImportError:
        c = httpclient.InferenceServerClient(url)

        def one(x):
            i = httpclient.InferInput("images", list(x.shape), "FP32")
            i.set_data_from_numpy(x)
            return c.infer(MODEL, [i]).as_numpy("probs")
        return "the server, one request at a time", one


def run_checks(url, grpc_port, want_grpc):
    c = httpclient.InferenceServerClient(url)
    check(c.is_server_live(), "server live")
    check(c.is_server_ready(), "server ready")
    check(c.is_model_ready(MODEL), "model ready")
    md = c.get_model_metadata(MODEL)
    check(md["inputs"][0]["name"] == "images" and md["inputs"][0]["shape"] == [-1, 3, 32, 32]
          and md["outputs"][0]["datatype"] == "FP32", "metadata: %s" % json.dumps(md))
    cfg = c.get_model_config(MODEL)
    check(cfg.get("max_batch_size") == 16 and cfg["instance_group"][0]["count"] == 2, "config: max_batch 16, 2 instances")
    sm = c.get_server_metadata()
    check(sm["name"] == "ramjet" and "binary_tensor_data" in sm["extensions"], "server metadata")

    ref_name, ref = reference_fn(url)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 32, 32), dtype=np.float32)
    want = ref(x)
    for binary in (False, True):
        i = httpclient.InferInput("images", list(x.shape), "FP32")
        i.set_data_from_numpy(x, binary_data=binary)
        o = httpclient.InferRequestedOutput("probs", binary_data=binary)
        got = c.infer(MODEL, [i], outputs=[o], request_id="r%d" % binary)
        y = got.as_numpy("probs")
        err = float(np.abs(y - want).max())
        check(y.shape == (3, 10) and err < 1e-4 and got.get_response()["id"] == "r%d" % binary,
              "infer %s: max abs error vs %s %.2e" % ("binary" if binary else "JSON", ref_name, err))

    def expect_error(fn, needle, what):
        try:
            fn()
            check(False, what + " (no error)")
        except InferenceServerException as e:
            check(needle in str(e), "%s -> %s" % (what, str(e)[:160]))

    bad = httpclient.InferInput("images", [1, 3, 32, 31], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3, 32, 31), np.float32))
    expect_error(lambda: c.infer(MODEL, [bad]), "dim 3 must be 32", "wrong shape rejected")
    badt = httpclient.InferInput("images", [1, 3, 32, 32], "INT32")
    badt.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.int32))
    expect_error(lambda: c.infer(MODEL, [badt]), "must be FP32", "wrong datatype rejected")
    ok_in = httpclient.InferInput("images", [1, 3, 32, 32], "FP32")
    ok_in.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    expect_error(lambda: c.infer("nope", [ok_in]), "no model 'nope'", "unknown model rejected")
    expect_error(lambda: c.infer(MODEL, [ok_in], outputs=[httpclient.InferRequestedOutput("zz")]), "no output 'zz'",
                 "unknown output rejected")
    big = httpclient.InferInput("images", [17, 3, 32, 32], "FP32")
    big.set_data_from_numpy(np.zeros((17, 3, 32, 32), np.float32))
    expect_error(lambda: c.infer(MODEL, [big]), "max_batch 16", "batch above max_batch rejected")
    for body, needle in ((b"{oops", "not valid JSON"), (b'{"inputs":[]}', "empty")):
        req = urllib.request.Request("http://%s/v2/models/%s/infer" % (url, MODEL), data=body, method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            check(False, "malformed body accepted")
        except urllib.error.HTTPError as e:
            check(e.code == 400 and needle in e.read().decode(), "malformed body -> 400 (%s)" % needle)

    # 64 concurrent clients, distinct inputs, batch 1..3, every answer checked.
    n_threads, per = 64, 6
    inputs = [rng.standard_normal((1 + k % 3, 3, 32, 32), dtype=np.float32) for k in range(n_threads * per)]
    refs = [ref(v) for v in inputs]
    results = [None] * len(inputs)
    errors = []

    def worker(t):
        cl = httpclient.InferenceServerClient(url)
        for k in range(per):
            idx = t * per + k
            try:
                i = httpclient.InferInput("images", list(inputs[idx].shape), "FP32")
                i.set_data_from_numpy(inputs[idx], binary_data=(idx % 2 == 0))
                results[idx] = cl.infer(MODEL, [i]).as_numpy("probs")
            except Exception as e:  # noqa: BLE001 - recorded and reported
                errors.append(repr(e))
    before = metrics(url)
    ths = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    t0 = time.time()
    [t.start() for t in ths]
    [t.join() for t in ths]
    dt = time.time() - t0
    worst = max((float(np.abs(results[k] - refs[k]).max()) if results[k] is not None else 1e9) for k in range(len(refs)))
    check(not errors and worst < 1e-4, "concurrency 64: %d requests in %.2f s, %d errors, max abs error %.2e vs %s"
          % (len(inputs), dt, len(errors), worst, ref_name))
    if errors:
        print("  first error:", errors[0])
    after = metrics(url)
    nb = after["ramjet_batches_total"] - before["ramjet_batches_total"]
    nr = after["ramjet_requests_ok"] - before["ramjet_requests_ok"]
    check(nr == len(inputs) and 0 < nb < nr, "metrics: %d requests merged into %d batches" % (nr, nb))

    if want_grpc:
        g = grpcclient.InferenceServerClient("127.0.0.1:%d" % grpc_port)
        check(g.is_server_live() and g.is_server_ready() and g.is_model_ready(MODEL), "gRPC health")
        gm = g.get_model_metadata(MODEL)
        check(gm.inputs[0].name == "images" and list(gm.inputs[0].shape) == [-1, 3, 32, 32], "gRPC metadata")
        gi = grpcclient.InferInput("images", list(x.shape), "FP32")
        gi.set_data_from_numpy(x)
        gy = g.infer(MODEL, [gi]).as_numpy("probs")
        check(gy is not None and float(np.abs(gy - want).max()) < 1e-4, "gRPC infer matches %s" % ref_name)
        gb = grpcclient.InferInput("images", [1, 3, 32, 31], "FP32")
        gb.set_data_from_numpy(np.zeros((1, 3, 32, 31), np.float32))
        try:
            g.infer(MODEL, [gb])
            check(False, "gRPC wrong shape accepted")
        except InferenceServerException as e:
            check("dim 3 must be 32" in str(e), "gRPC wrong shape -> %s" % str(e)[:120])
    else:
        print("SKIP: gRPC (tritonclient.grpc or libramjet_grpc.so missing)")


def metrics(url):
    text = urllib.request.urlopen("http://%s/metrics" % url, timeout=10).read().decode()
    out = {}
    m = re.search(r'^ramjet_batches_total\{model="tiny"\} (\d+)', text, re.M)
    out["ramjet_batches_total"] = int(m.group(1)) if m else -1
    m = re.search(r'^ramjet_requests_total\{model="tiny",outcome="ok"\} (\d+)', text, re.M)
    out["ramjet_requests_ok"] = int(m.group(1)) if m else -1
    for h in ("ramjet_queue_duration_seconds", "ramjet_compute_duration_seconds", "ramjet_batch_size"):
        if h + "_bucket" not in text:
            check(False, "metrics has " + h)
    return out


def shutdown_check(proc, url):
    # Requests in flight when SIGTERM arrives still get their answers; then the process exits 0.
    x = np.ones((1, 3, 32, 32), np.float32)
    done, errs = [], []

    def fire():
        try:
            cl = httpclient.InferenceServerClient(url, network_timeout=30)
            i = httpclient.InferInput("images", [1, 3, 32, 32], "FP32")
            i.set_data_from_numpy(x)
            done.append(cl.infer(MODEL, [i]).as_numpy("probs").shape)
        except Exception as e:  # noqa: BLE001 (str: InferenceServerException's repr drops the message)
            errs.append("%s: %s" % (type(e).__name__, e))
    ths = [threading.Thread(target=fire) for _ in range(16)]
    [t.start() for t in ths]
    time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    [t.join() for t in ths]
    try:
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        rc = None
    # A request that had not reached the server before the listener closed may be refused
    # (connection error); one that was accepted must be answered.
    check(rc == 0, "SIGTERM: server exited with %s" % rc)
    check(all(any(k in e.lower() for k in ("connection", "refused", "reset", "shutting down")) for e in errs),
          "SIGTERM: %d answered, %d refused (connection refused or 503 shutting down), no other failure (%s)"
          % (len(done), len(errs), sorted(set(errs))[:2]))


def reuseport_check(repo):
    # Two server processes behind one port (SO_REUSEPORT): the kernel spreads new connections
    # over both; every request is answered correctly and both processes served some.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    procs = [start_server(repo, False, port, ["--reuse-port"]) for _ in range(2)]
    try:
        if not all("HTTP" in p[1] for p in procs):
            check(False, "two servers on one port: %s" % ["".join(p[2]) for p in procs])
            return
        url = "127.0.0.1:%d" % port
        x = np.ones((1, 3, 32, 32), np.float32)
        ref = None
        results, errs = [], []

        def one():
            try:
                cl = httpclient.InferenceServerClient(url)  # a new connection per client
                i = httpclient.InferInput("images", [1, 3, 32, 32], "FP32")
                i.set_data_from_numpy(x)
                for _ in range(4):
                    results.append(cl.infer(MODEL, [i]).as_numpy("probs"))
                cl.close()
            except Exception as e:  # noqa: BLE001
                errs.append(repr(e))
        ths = [threading.Thread(target=one) for _ in range(32)]
        [t.start() for t in ths]
        [t.join() for t in ths]
        ref = results[0] if results else None
        same = ref is not None and all(float(np.abs(r - ref).max()) < 1e-5 for r in results)
        counts = []
        for p, _, lines in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
            time.sleep(0.1)
            m = re.search(r"stopped after (\d+) requests", "".join(lines))
            counts.append(int(m.group(1)) if m else -1)
        check(not errs and same and len(results) == 128 and sum(counts) == 128 and min(counts) > 0,
              "two processes on one port (--reuse-port): 128 requests, served %s, %d errors %s" % (counts, len(errs), errs[:1]))
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
