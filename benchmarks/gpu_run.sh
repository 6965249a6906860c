#!/usr/bin/env bash
# One run on a machine with a CUDA GPU: the CUDA tests, then the step benchmarks there.
#
#   bash benchmarks/gpu_run.sh            # results under $OUT (default gpu-out/)
#
# Runs from the repository root with the machine's own python3 and torch (PYTHONPATH=src,
# nothing installed). Each part has a time limit and its own file under $OUT, so a part
# that fails or runs long costs only itself. Parts (files):
#   env.txt        the GPU and the software
#   tests.txt      tests/optim/test_cuda.py
#   step.txt       step_throughput.py --quick on the GPU, with compile times (step.json: raw)
#   variants.txt   the compiled path called directly (fused.DIRECT_DEVICES with cuda), and
#                  the same with every tensor packed (engine.BIG raised), on the larger sets
#   state.txt      state_dtype.py: bf16 state against torch's fused Adam
#   trainer.txt    trainer_overhead.py: whole iterations against a hand loop with torch.optim
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEV=${DEV:-cuda}
SETS=${SETS:-}  # a dry run on a CPU: DEV=cpu SETS=2 STATE_SETS=transformer bash benchmarks/gpu_run.sh

part() {  # part NAME LIMIT_S COMMAND...
    local name=$1 limit=$2 start
    shift 2
    start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "== $name: exit $? after $(($(date +%s) - start)) s (limit $limit s)" | tee -a "$OUT/summary.txt"
}

variant() {  # variant PACK_ALL: step_throughput with direct calls on the device
    "$PY" - "$1" "$DEV" "${SETS:-200k,many-small,transformer}" <<'EOF'
import runpy, sys
from descend.optim import engine, fused
pack_all, dev, sets = sys.argv[1] == "1", sys.argv[2], sys.argv[3]
fused.DIRECT_DEVICES.add(dev)
if pack_all:
    engine.BIG = 1 << 62
print(f"direct calls on {dev}; every tensor packed: {pack_all}")
sys.argv = ["step_throughput.py", "--device", dev, "--quick", "--no-compile-times", "--sets", sets,
            "--optimizers", "Momentum,Adam,RMSprop"]
runpy.run_path("benchmarks/step_throughput.py", run_name="__main__")
EOF
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
    "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
    "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
    nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

part tests 150 "$PY" -m pytest -q -p no:cacheprovider tests/optim/test_cuda.py
part step 170 "$PY" benchmarks/step_throughput.py --device "$DEV" --quick --json "$OUT/step.json" ${SETS:+--sets $SETS}
export -f variant
export PY DEV SETS
part variants 110 bash -c "variant 0; variant 1"
part state 60 "$PY" benchmarks/state_dtype.py --device "$DEV" --rounds 9 --sets "${STATE_SETS:-resnet50,transformer}"
part trainer 60 "$PY" benchmarks/trainer_overhead.py --device "$DEV" --rounds 3 --epochs 5

echo
for f in tests step variants state trainer; do
    echo "######## $f"
    grep -v '^\s*$' "$OUT/$f.txt" | grep -E '^\||passed|skipped|failed|error|Error|compiled Adam|direct calls|^###|^torch|ratio|Trainer|hand' | tail -n 60
done
