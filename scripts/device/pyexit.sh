#!/usr/bin/env bash
# Bisects the Python exit crash (rc 139 after all tests passed): which combination of a CUDA
# engine, torch and object lifetime makes the interpreter die at exit.
set -u
export PYTHONPATH=$PWD/build/python RAMJET_CRASH_BACKTRACE=1
PY=python3
pre='import ramjet, numpy as np
g = ramjet.import_onnx("models/tiny_cnn.onnx")
'
run() { timeout 60 $PY -X faulthandler -c "$2" > /tmp/pe.log 2>&1; echo "$1: rc=$?"; tail -4 /tmp/pe.log | sed 's/^/    /'; }
run "ramjet cpu engine" "$pre
e = ramjet.build(g, ramjet.BuildOptions(device='cpu')); print('ok')"
run "ramjet cuda plan only" "$pre
p = ramjet.build(g, ramjet.BuildOptions(device='cuda')); print('ok')"
run "ramjet cuda engine+ctx" "$pre
p = ramjet.build(g, ramjet.BuildOptions(device='cuda')); p.save('/tmp/t.plan')
e = ramjet.Engine.load('/tmp/t.plan'); c = e.create_context(); print('ok')"
run "ramjet cuda infer" "$pre
p = ramjet.build(g, ramjet.BuildOptions(device='cuda')); p.save('/tmp/t.plan')
e = ramjet.Engine.load('/tmp/t.plan'); c = e.create_context()
x = {e.inputs[0].name: np.zeros([1 if d is None or not isinstance(d, int) or d < 0 else d for d in e.inputs[0].shape], np.float32)}
print(type(c.infer(x)))"
run "ramjet cuda infer, del before exit" "$pre
p = ramjet.build(g, ramjet.BuildOptions(device='cuda')); p.save('/tmp/t.plan')
e = ramjet.Engine.load('/tmp/t.plan'); c = e.create_context()
x = {e.inputs[0].name: np.zeros([1 if d is None or not isinstance(d, int) or d < 0 else d for d in e.inputs[0].shape], np.float32)}
c.infer(x); del c, e, p; import gc; gc.collect(); print('ok')"
run "torch then ramjet cuda infer" "import torch; torch.zeros(1, device='cuda')
$pre
p = ramjet.build(g, ramjet.BuildOptions(device='cuda')); p.save('/tmp/t.plan')
e = ramjet.Engine.load('/tmp/t.plan'); c = e.create_context()
x = {e.inputs[0].name: np.zeros([1 if d is None or not isinstance(d, int) or d < 0 else d for d in e.inputs[0].shape], np.float32)}
c.infer(x); print('ok')"
run "ramjet cuda fp16 build" "$pre
p = ramjet.build(g, ramjet.BuildOptions(device='cuda', precision='fp16')); print('ok')"
