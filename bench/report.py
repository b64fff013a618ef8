#!/usr/bin/env python3
"""Turn benchmark JSON (schema "ramjet-bench/1") into a Markdown table, a merged JSON and a PNG.

  python3 bench/report.py docs/perf/peers.json [ramjet.json ...] \\
      --md docs/perf/peers.md --json docs/perf/merged.json --png docs/perf/peers.png

Inputs are merged; a later file's row replaces an earlier one with the same
(model, batch, runtime, mode). Rows come from bench/peers/peer_bench.py (runtime "pytorch" and
"onnxruntime") and from ramjet's own benchmark (runtime "ramjet", modes "ramjet_fp32",
"ramjet_fp16", "ramjet_int8", same latency_ms / throughput_per_s fields). A missing
measurement prints as "—"; nothing is estimated.

Ratios are throughput ratios ramjet / peer at the same model and batch (> 1: ramjet faster):
ramjet FP32 vs PyTorch eager FP32, and ramjet FP16 vs the fastest PyTorch FP16 mode measured
for that row (eager channels_last, CUDA graph, or torch.compile).
"""

import argparse
import json
import os
import sys

PEER_COLS = [("eager_fp32", "PyTorch eager FP32"), ("eager_fp16_cl", "eager FP16 CL"),
             ("cudagraph_fp16", "CUDA graph FP16"), ("compile_fp16", "compile FP16")]
RAMJET_COLS = [("ramjet_fp32", "ramjet FP32"), ("ramjet_fp16", "ramjet FP16"), ("ramjet_int8", "ramjet INT8")]
FP16_PEERS = ("eager_fp16_cl", "cudagraph_fp16", "compile_fp16")
MODEL_ORDER = ["resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16", "yolov8n", "yolov8s", "yolov5s"]


def load(paths):
    env, commands, rows, zoo = {}, [], {}, {}
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        if d.get("schema") != "ramjet-bench/1":
            sys.exit(f"error: {p}: schema is {d.get('schema')!r}, expected 'ramjet-bench/1'")
        if not env or (d.get("env", {}).get("gpu") and not env.get("gpu")):
            env = d.get("env", {})
        commands.append({"file": os.path.basename(p), "command": d.get("command"), "env": d.get("env")})
        zoo.update(d.get("zoo", {}))
        for r in d["results"]:
            rows[(r["model"], r["batch"], r["runtime"], r["mode"])] = r
    return env, commands, list(rows.values()), zoo


def ok(r):
    return r is not None and r.get("status") == "ok" and r.get("latency_ms")


def fmt_ms(r):
    if r is None:
        return "—"
    if not ok(r):
        return {"skipped": "skip", "timeout": "timeout", "error": "error"}.get(r.get("status"), "—")
    ms = r["latency_ms"]["median"]
    s = f"{ms:.3f}" if ms < 10 else f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"
    if r.get("compile_s") is not None:
        s += f" ({r['compile_s']:.0f} s)"
    return s


def fmt_tp(v):
    return "—" if v is None else f"{v:,.0f}"


def fmt_ratio(a, b):
    if not (ok(a) and ok(b)):
        return "—"
    return f"{a['throughput_per_s'] / b['throughput_per_s']:.2f}×"


def build_table(rows):
    idx = {(r["model"], r["batch"], r["mode"]): r for r in rows}
    keys = sorted({(r["model"], r["batch"]) for r in rows if r["batch"] > 0},
                  key=lambda k: (MODEL_ORDER.index(k[0]) if k[0] in MODEL_ORDER else 99, k[0], k[1]))
    have_ramjet = any(r["runtime"] == "ramjet" for r in rows)
    rj_cols = RAMJET_COLS if have_ramjet else RAMJET_COLS[:2]
    head = (["model", "batch"] + [f"{t} ms" for _, t in PEER_COLS] + ["best PyTorch FP16 /s", "ORT CPU FP32 ms"]
            + [f"{t} ms" for _, t in rj_cols] + ["ramjet/eager FP32", "ramjet/best FP16"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    table = []
    for m, b in keys:
        get = lambda mode: idx.get((m, b, mode))  # noqa: E731
        fp16 = [get(x) for x in FP16_PEERS if ok(get(x))]
        best16 = max(fp16, key=lambda r: r["throughput_per_s"]) if fp16 else None
        cells = [m, str(b)] + [fmt_ms(get(c)) for c, _ in PEER_COLS]
        cells.append(fmt_tp(best16["throughput_per_s"]) + f" ({best16['mode'].split('_')[0]})" if best16 else "—")
        cells.append(fmt_ms(get("ort_cpu_fp32")) if b == 1 else "")
        cells += [fmt_ms(get(c)) for c, _ in rj_cols]
        cells += [fmt_ratio(get("ramjet_fp32"), get("eager_fp32")), fmt_ratio(get("ramjet_fp16"), best16)]
        lines.append("| " + " | ".join(cells) + " |")
        entry = {"model": m, "batch": b, "best_pytorch_fp16_mode": best16["mode"] if best16 else None}
        for c, _ in PEER_COLS + RAMJET_COLS + [("ort_cpu_fp32", "")]:
            r = get(c)
            entry[c] = ({"latency_ms": r["latency_ms"]["median"], "throughput_per_s": r["throughput_per_s"]}
                        if ok(r) else None)
        for name, a, p in (("ratio_ramjet_fp32_vs_eager_fp32", get("ramjet_fp32"), get("eager_fp32")),
                           ("ratio_ramjet_fp16_vs_best_pytorch_fp16", get("ramjet_fp16"), best16)):
            entry[name] = a["throughput_per_s"] / p["throughput_per_s"] if ok(a) and ok(p) else None
        table.append(entry)
    return lines, table


def chart(rows, png, env):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = {(r["model"], r["batch"], r["mode"]): r for r in rows if ok(r)}
    models = [m for m in MODEL_ORDER if any(k[0] == m for k in idx)]
    series = [(c, t) for c, t in PEER_COLS + RAMJET_COLS + [("ort_cpu_fp32", "ORT CPU FP32")]
              if any(k[2] == c for k in idx)]
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
    for ax, batch, what in ((axes[0], 1, "latency"), (axes[1], 32, "throughput")):
        ser = [(c, t) for c, t in series if any((m, batch, c) in idx for m in models)]
        width = 0.8 / max(len(ser), 1)
        for i, (c, t) in enumerate(ser):
            xs, ys = [], []
            for j, m in enumerate(models):
                r = idx.get((m, batch, c))
                if r:
                    xs.append(j + (i - (len(ser) - 1) / 2) * width)
                    ys.append(r["latency_ms"]["median"] if what == "latency" else r["throughput_per_s"])
            ax.bar(xs, ys, width, label=t)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=20, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median latency, ms (log)" if what == "latency" else "images / s (log)")
        ax.set_title(f"batch {batch}: {'latency (lower is better)' if what == 'latency' else 'throughput (higher is better)'}")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"ramjet zoo peers on {env.get('gpu', env.get('device', '?'))}, driver {env.get('driver', '?')}, "
                 f"torch {env.get('torch', '?')}, {env.get('date_utc', '')} UTC", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--md", help="Markdown output (default: stdout)")
    ap.add_argument("--json", help="merged JSON output (rows + computed table)")
    ap.add_argument("--png", help="bar chart output")
    args = ap.parse_args()
    env, commands, rows, zoo = load(args.inputs)
    lines, table = build_table(rows)
    md = [f"Measured {env.get('date_utc', '?')} UTC on {env.get('gpu', env.get('device'))} "
          f"(driver {env.get('driver', '?')}, CUDA {env.get('cuda', '?')}, cuDNN {env.get('cudnn', '?')}), "
          f"torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}, host CPU {env.get('cpu')} "
          f"× {env.get('cpu_count')} threads.", "",
          "Median latency in ms (CUDA events, after warm-up, each iteration synchronised); "
          "'compile FP16' shows compile seconds in brackets; best PyTorch FP16 throughput in "
          "images/s with the mode that gave it; ratios are ramjet/peer throughput at the same batch "
          "(> 1: ramjet faster). '—' = not measured.", ""] + lines
    fp = [r for r in rows if r["mode"] == "fp16_vs_fp32"]
    if fp:
        md += ["", "FP16 vs FP32 output cosine (PyTorch, first batch): " +
               ", ".join(f"{r['model']} {r['cosine']:.6f}" for r in fp)]
    notes = [r for r in rows if r.get("status") not in ("ok", "info")]
    if notes:
        md += ["", "Not measured:"]
        md += [f"- {r['model']} b{r['batch']} {r['mode']}: {r['status']}: {r.get('note') or r.get('error')}" for r in notes]
    md += ["", "Sources (each row must come from the same device call as the peers it is compared with):"]
    md += [f"- {c['file']}: {(c['env'] or {}).get('date_utc', '?')} UTC, "
           f"{(c['env'] or {}).get('gpu') or (c['env'] or {}).get('device', '?')}: `{c['command']}`" for c in commands]
    text = "\n".join(md) + "\n"
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": "ramjet-bench-report/1", "env": env, "sources": commands, "zoo": zoo,
                       "table": table, "results": rows}, f, indent=1)
    if args.png:
        chart(rows, args.png, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
