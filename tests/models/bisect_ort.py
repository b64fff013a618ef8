#!/usr/bin/env python3
"""Find the first node where `ramjet run` (CPU reference) and onnxruntime disagree.

  python3 tests/models/bisect_ort.py models/zoo/mobilenet_v3_large.onnx [--ramjet build/bin/ramjet]

Every float intermediate is made a graph output (types from onnx shape inference), the same
seeded input goes through both runtimes (onnxruntime with graph optimisations off, so its
intermediates are the model's own), and nodes are walked in graph order. Reported: the first
nodes whose output is off (cosine < --tol-cos or abs error / max |ref| > --tol-rel) while
every float input of theirs still matched -- the kernel or shape function to look at.
"""

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
from compare_ort import find_ramjet, metrics, safe_name  # noqa: E402
import zoo  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--ramjet")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tol-cos", type=float, default=0.9999)
    ap.add_argument("--tol-rel", type=float, default=1e-3)
    ap.add_argument("--show", type=int, default=5, help="how many culprit nodes to print")
    args = ap.parse_args()

    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, shape_inference

    ramjet = find_ramjet(args.ramjet)
    model = onnx.load(args.model)
    inferred = shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    existing = {o.name for o in model.graph.output}
    taps = []
    for node in model.graph.node:
        for o in node.output:
            if o and o not in existing and types.get(o) == TensorProto.FLOAT:
                model.graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, None))
                taps.append(o)
    name = os.path.splitext(os.path.basename(args.model))[0]
    with tempfile.TemporaryDirectory(prefix="ramjet_bisect_") as tmp:
        path = os.path.join(tmp, "tapped.onnx")
        onnx.save(model, path)
        x = (zoo.seeded_input(name, args.batch, args.seed) if name in zoo.MODELS else
             np.random.default_rng(args.seed).standard_normal(
                 [d.dim_value or args.batch for d in model.graph.input[0].type.tensor_type.shape.dim]).astype(np.float32))
        in_name = model.graph.input[0].name
        np.save(os.path.join(tmp, "in.npy"), x)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        ref = dict(zip(names, sess.run(None, {in_name: x})))
        p = subprocess.run([ramjet, "run", path, "--input", f"{in_name}={tmp}/in.npy", "-o", f"{tmp}/out", "-q"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(f"ramjet run failed: {p.stderr.strip()[:3000]}")
            return 1
        got = {}
        for n in names:
            f = os.path.join(tmp, "out", safe_name(n) + ".npy")
            if os.path.exists(f):
                got[n] = np.load(f)
    bad = set()
    culprits = []
    for node in model.graph.node:
        outs_bad = []
        for o in node.output:
            if o not in ref or o not in got:
                continue
            if got[o].shape != ref[o].shape:
                outs_bad.append((o, f"shape {got[o].shape} vs {ref[o].shape}"))
                continue
            m = metrics(got[o], ref[o])
            if not (m["cosine"] >= args.tol_cos and m["rel_to_max"] <= args.tol_rel):
                outs_bad.append((o, f"cos={m['cosine']:.6f} rel_to_max={m['rel_to_max']:.3e} max_abs={m['max_abs']:.3e}"))
        if outs_bad:
            bad.update(o for o, _ in outs_bad)
            if not any(i in bad for i in node.input):
                culprits.append((node, outs_bad))
    print(f"{name}: {len(taps)} intermediates compared, {len(bad)} off, {len(culprits)} first-divergence node(s)")
    for node, outs in culprits[: args.show]:
        attrs = ", ".join(f"{a.name}={helper.get_attribute_value(a)}" for a in node.attribute
                          if a.type != onnx.AttributeProto.TENSOR)
        ins = ", ".join(f"{i}{list(ref[i].shape) if i in ref else ''}" for i in node.input)
        print(f"  {node.op_type} '{node.name}' ({attrs}) inputs: {ins}")
        for o, why in outs:
            print(f"    -> {o}: {why}")
    return 1 if culprits else 0


if __name__ == "__main__":
    sys.exit(main())
