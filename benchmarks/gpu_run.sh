#!/usr/bin/env bash
# One run on a machine with a CUDA GPU: the CUDA tests, then the step benchmarks there.
#
#   bash benchmarks/gpu_run.sh            # results under $OUT (default gpu-out/)
#
# Runs from the repository root with the machine's own python3 and torch (PYTHONPATH=src,
# nothing installed). Each part has a time limit and its own file under $OUT, so a part
# that fails or runs long costs only itself. Parts (files):
#   env.txt        the GPU and the software
#   tests.txt      tests/optim/test_cuda.py (about 110 s on an H200)
#   profile.txt    benchmarks/profile_step.py: where a step's time goes (RMSprop, compiled path)
#   step.txt       step_throughput.py --quick on the GPU (step.json: raw)
#   variants.txt   the larger sets with every tensor packed (engine.BIG_ACCELERATOR raised)
#   state.txt      state_dtype.py: bf16 state against torch's fused Adam
#   trainer.txt    trainer_overhead.py: whole iterations against a hand loop with torch.optim
# PARTS picks some (default: all): PARTS="tests step" bash benchmarks/gpu_run.sh
# A dry run on a CPU: DEV=cpu SETS=2 STATE_SETS=transformer bash benchmarks/gpu_run.sh
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export PY=${PY:-python3} DEV=${DEV:-cuda} SETS=${SETS:-}
PARTS=${PARTS:-tests profile step variants state trainer}

part() {  # part NAME LIMIT_S COMMAND...
    local name=$1 limit=$2 start
    shift 2
    case " $PARTS " in *" $name "*) ;; *) return 0 ;; esac
    start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "== $name: exit $? after $(($(date +%s) - start)) s (limit $limit s)" | tee -a "$OUT/summary.txt"
}

# A benchmark script run with the engine's settings for this device changed by PACK_ALL=1
# (every tensor packed on an accelerator).
WITH='import runpy, sys, os
from descend.optim import engine
if os.environ.get("PACK_ALL") == "1":
    engine.BIG_ACCELERATOR = 1 << 62
print("every tensor packed:", os.environ.get("PACK_ALL") == "1")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")'

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
    "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
    "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
    nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

part tests 150 "$PY" -m pytest -q -p no:cacheprovider tests/optim/test_cuda.py
part profile 40 "$PY" benchmarks/profile_step.py --device "$DEV" --set "${SETS:-transformer}" --optimizer RMSprop --impl fused --rows 12
part step 100 "$PY" benchmarks/step_throughput.py --device "$DEV" --quick --no-compile-times --json "$OUT/step.json" ${SETS:+--sets $SETS}
part variants 60 env PACK_ALL=1 "$PY" -c "$WITH" benchmarks/step_throughput.py --device "$DEV" --quick --no-compile-times \
    --sets "${SETS:-many-small,transformer}" --optimizers Momentum,Adam,RMSprop
part state 45 "$PY" benchmarks/state_dtype.py --device "$DEV" --rounds 9 --sets "${STATE_SETS:-resnet50,transformer}"
part trainer 60 "$PY" benchmarks/trainer_overhead.py --device "$DEV" --rounds 3 --epochs 5

echo
for f in $PARTS; do
    echo "######## $f"
    [ -f "$OUT/$f.txt" ] || continue
    grep -v '^\s*$' "$OUT/$f.txt" | grep -E '^\||passed|skipped|failed|Error|packed|graphs compiled|^ *(triton|void|Name|aten|Optimizer|## Call)|^###|^torch|ratio' | tail -n 60
done
