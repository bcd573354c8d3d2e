#!/usr/bin/env bash
# The device checks (bf16 and CUDA speed, device placement) as one script (< 8 minutes on one H200), for a machine with a CUDA GPU.
#   here, once:      bash benchmarks/gpu_wheels.sh        (the packages the device image lacks, into .whl/)
#   device tool:     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# It runs the CUDA tests, learner_update.py on cuda in fp32 and bf16 (SC2 3s5z_vs_3s6z shapes; the host's
# QMIX in its own fp32 is the baseline of the ratios), and a short R3DM training run with use_cuda=True
# through PyMARLzoo+ on LBF, and writes everything to $OUT/gpu_check.txt (or /tmp/gpu_check/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.txt"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore MPLBACKEND=Agg
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" | tee "$LOG"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
step() { echo; echo "== $1 ($(date +%T))"; }
{
  step "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"
  step "CUDA tests"
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/unit/test_kmeans.py tests/unit/test_precision.py -k "cuda"
  step "one learner update on cuda, fp32"
  timeout 120 python3 benchmarks/learner_update.py --preset sc2 --device cuda --no-memory --repeats 5
  step "one learner update on cuda, bf16 (plug-in algorithms; host QMIX fp32)"
  timeout 120 python3 benchmarks/learner_update.py --preset sc2 --device cuda --precision bf16 --no-memory --repeats 5
  step "R3DM training through PyMARLzoo+ with use_cuda=True (LBF, 3000 steps, bf16)"
  timeout 150 python3 -m r3dm_epymarl run --host pymarlzooplus --base-dir /tmp/gpu_run --config=r3dm --env-config=gymma \
    with env_args.key=lbforaging:Foraging-8x8-3p-3f-v3 env_args.time_limit=50 t_max=3000 use_cuda=True precision=bf16 \
    batch_size=32 test_interval=1000 test_nepisode=8 log_interval=1000 learner_log_interval=1000 runner_log_interval=1000 \
    pretrain_encoder_steps=5 pretrain_contrastive_steps=5 2>&1 | grep -E "r3dm-epymarl|loss_td|test_return_mean|Error|error" | tail -20
  step "done"
} 2>&1 | tee "$LOG"
