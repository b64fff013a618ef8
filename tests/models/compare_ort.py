#!/usr/bin/env python3
"""Models ramjet did not write, run by `ramjet run` (CPU reference backend) vs onnxruntime (CPU).

  python3 tests/models/compare_ort.py [--quick] [--models a,b] [--ramjet build/bin/ramjet]
                                      [--zoo models/zoo] [--json out.json] [--md out.md]

For each zoo model (generate them first: /usr/bin/python3 models/zoo.py), one seeded input
(models/zoo.py seeded_input, batch --batch) is written as .npy, run through
`ramjet run model.onnx --input NAME=in.npy -o DIR`, and through onnxruntime's CPU provider.
Per output: max abs error, max relative error (|a-b| / max(|ref|, 1e-3 * max|ref|)), error
relative to max |ref|, and cosine similarity. A model passes when every output has
cosine >= --tol-cos (0.9999) and max abs error / max |ref| <= --tol-rel (1e-3).
For detectors the class-score part of the output (values in 0..1, easily hidden next to
640-pixel box coordinates) is also reported on its own and held to the same tolerances.

Exit status: 0 all pass; 1 a model failed or ramjet errored; 77 (CTest's skip) when the zoo
has not been generated or onnxruntime is missing, with --skip-missing only.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models"))
import zoo  # noqa: E402  (only its torch-free helpers are used)

SKIP = 77


def metrics(got, ref):
    import numpy as np

    g = np.asarray(got, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    if not np.all(np.isfinite(g)):
        bad = int(np.size(g) - np.count_nonzero(np.isfinite(g)))
        return {"max_abs": float("inf"), "max_rel": float("inf"), "rel_to_max": float("inf"),
                "cosine": float("nan"), "nonfinite": bad}
    diff = np.abs(g - r)
    amax = float(np.abs(r).max()) if r.size else 0.0
    floor = max(1e-3 * amax, 1e-30)
    den = np.linalg.norm(g) * np.linalg.norm(r)
    return {"max_abs": float(diff.max()) if diff.size else 0.0,
            "max_rel": float((diff / np.maximum(np.abs(r), floor)).max()) if diff.size else 0.0,
            "rel_to_max": float(diff.max() / max(amax, 1e-30)) if diff.size else 0.0,
            "cosine": float(g @ r / den) if den > 0 else float(np.array_equal(g, r))}


def passes(m, args):
    return m["cosine"] >= args.tol_cos and m["rel_to_max"] <= args.tol_rel


def score_slice(name, arr):
    """The class-score block of a detector output, or None."""
    if name.startswith("yolov8"):
        return arr[:, 4:, :]  # [N, 4+nc, A]
    if name.startswith("yolov5"):
        return arr[..., 4:]  # [N, A, 5+nc]: objectness + classes
    return None


def safe_name(s):
    s = s or "output"
    s = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in s)
    return "_" if s in (".", "..") else s


def find_ramjet(explicit):
    if explicit:
        return explicit
    for d in ("build-zoo", "build"):
        p = os.path.join(ROOT, d, "bin", "ramjet")
        if os.access(p, os.X_OK):
            return p
    return shutil.which("ramjet")


def run_one(name, args, ramjet, tmp):
    import numpy as np
    import onnxruntime as ort

    path = os.path.join(args.zoo, name + ".onnx")
    res = {"model": name, "batch": args.batch, "file": path}
    if not os.path.exists(path):
        res.update(status="missing", error=f"{path} not found (run: /usr/bin/python3 models/zoo.py)")
        return res
    x = zoo.seeded_input(name, args.batch, args.seed)
    opts = ort.SessionOptions()
    if args.ort_threads:
        opts.intra_op_num_threads = args.ort_threads
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    t0 = time.time()
    refs = sess.run(None, {in_name: x})
    res["ort_s"] = round(time.time() - t0, 3)

    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    in_path = os.path.join(d, "input.npy")
    np.save(in_path, x)
    cmd = [ramjet, "run", path, "--input", f"{in_name}={in_path}", "-o", os.path.join(d, "out")]
    t0 = time.time()
    try:
        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        res.update(status="error", error=f"ramjet run did not finish in {args.timeout} s")
        return res
    res["ramjet_s"] = round(time.time() - t0, 2)
    res["command"] = " ".join(cmd)
    if p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip())
        res.update(status="error", error=f"ramjet run exited {p.returncode}: {msg[:4000]}")
        return res
    res["outputs"] = []
    ok = True
    for oname, ref in zip(out_names, refs):
        f = os.path.join(d, "out", safe_name(oname) + ".npy")
        if not os.path.exists(f):
            res["outputs"].append({"name": oname, "error": f"ramjet wrote no {f}"})
            ok = False
            continue
        got = np.load(f)
        o = {"name": oname, "shape": list(ref.shape)}
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            o["error"] = f"ramjet gave {got.dtype}{list(got.shape)}, onnxruntime {ref.dtype}{list(ref.shape)}"
            ok = False
        else:
            o.update(metrics(got, ref))
            ok &= passes(o, args)
            sc = score_slice(name, ref)
            if sc is not None:
                o["scores"] = metrics(score_slice(name, got), sc)
                ok &= passes(o["scores"], args)
        res["outputs"].append(o)
    res["status"] = "pass" if ok else "fail"
    return res


def line(r):
    head = f"{r['model']:<20} {r['status'].upper():<7}"
    if r["status"] in ("pass", "fail"):
        parts = []
        for o in r["outputs"]:
            if "error" in o:
                parts.append(f"{o['name']}: {o['error']}")
                continue
            s = (f"{o['name']}: max_abs={o['max_abs']:.3e} max_rel={o['max_rel']:.3e} "
                 f"rel_to_max={o['rel_to_max']:.3e} cos={o['cosine']:.8f}")
            if "scores" in o:
                s += f" | scores max_abs={o['scores']['max_abs']:.3e} cos={o['scores']['cosine']:.8f}"
            parts.append(s)
        return head + f" ramjet {r.get('ramjet_s')} s, ort {r.get('ort_s')} s  " + "; ".join(parts)
    return head + " " + r.get("error", "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(zoo.MODELS))
    ap.add_argument("--quick", action="store_true", help="skip " + ", ".join(zoo.SLOW_ON_CPU))
    ap.add_argument("--ramjet", help="ramjet binary (default: build-zoo/bin or build/bin)")
    ap.add_argument("--zoo", default=os.path.join(ROOT, "models", "zoo"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tol-cos", type=float, default=0.9999)
    ap.add_argument("--tol-rel", type=float, default=1e-3)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per ramjet run")
    ap.add_argument("--ort-threads", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for ramjet (0: inherit)")
    ap.add_argument("--skip-missing", action="store_true", help="exit 77 (skip) when zoo files or onnxruntime are missing")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--md", help="write a Markdown table here")
    args = ap.parse_args()

    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        print(f"compare_ort: needs numpy and onnxruntime in {sys.executable}: {e}", file=sys.stderr)
        return SKIP if args.skip_missing else 2
    ramjet = find_ramjet(args.ramjet)
    if not ramjet or not os.access(ramjet, os.X_OK):
        print(f"compare_ort: no ramjet binary (give --ramjet); tried build-zoo/bin, build/bin, PATH", file=sys.stderr)
        return 2
    names = [n for n in args.models.split(",") if n]
    bad = [n for n in names if n not in zoo.MODELS]
    if bad:
        ap.error(f"unknown models {bad}; known: {list(zoo.MODELS)}")
    if args.quick:
        names = [n for n in names if n not in zoo.SLOW_ON_CPU]
    missing = [n for n in names if not os.path.exists(os.path.join(args.zoo, n + ".onnx"))]
    if missing and args.skip_missing and len(missing) == len(names):
        print(f"compare_ort: SKIP: zoo not generated in {args.zoo} (run: /usr/bin/python3 models/zoo.py)")
        return SKIP

    results = []
    with tempfile.TemporaryDirectory(prefix="ramjet_cmp_") as tmp:
        for n in names:
            try:
                r = run_one(n, args, ramjet, tmp)
            except Exception as e:  # a broken model file etc.: report, keep going
                r = {"model": n, "batch": args.batch, "status": "error", "error": f"{type(e).__name__}: {e}"}
            results.append(r)
            print(line(r), flush=True)
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "error", "missing")}
    print(f"compare_ort: {counts['pass']}/{len(results)} pass, {counts['fail']} fail, "
          f"{counts['error']} error, {counts['missing']} missing  (ramjet: {ramjet})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ramjet": ramjet, "tol_cos": args.tol_cos, "tol_rel": args.tol_rel,
                       "seed": args.seed, "results": results}, f, indent=1)
    if args.md:
        rows = ["| model | status | output | max abs | max rel | abs/max|ref| | cosine | ramjet s |",
                "|---|---|---|---|---|---|---|---|"]
        for r in results:
            outs = [o for o in r.get("outputs", []) if "cosine" in o]
            if not outs:
                err = (r.get("error") or "; ".join(o.get("error", "") for o in r.get("outputs", [])))
                err = err.replace("|", "/").replace("\n", " ")[:300]
                rows.append(f"| {r['model']} | {r['status']} | {err} | | | | | |")
            for o in outs:
                rows.append(f"| {r['model']} | {r['status']} | {o['name']} | {o['max_abs']:.2e} | {o['max_rel']:.2e} | "
                            f"{o['rel_to_max']:.2e} | {o['cosine']:.8f} | {r.get('ramjet_s', '')} |")
                if "scores" in o:
                    s = o["scores"]
                    rows.append(f"| | | (class scores) | {s['max_abs']:.2e} | {s['max_rel']:.2e} | {s['rel_to_max']:.2e} | "
                                f"{s['cosine']:.8f} | |")
        with open(args.md, "w") as f:
            f.write("\n".join(rows) + "\n")
    if counts["pass"] == len(results):
        return 0
    if args.skip_missing and counts["missing"] and counts["fail"] == 0 and counts["error"] == 0:
        return SKIP
    return 1


if __name__ == "__main__":
    sys.exit(main())
