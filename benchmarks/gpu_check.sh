#!/usr/bin/env bash
# One prepared GPU run (about 10 minutes on one H200; no package index or ../shared needed):
#   1. per-stage step throughput, eager vs the fast path (ranking: 16 architectures in flight, with
#      device ops and host syncs per architecture), with the fast-vs-eager loss comparison
#      and the projected `paper` wall time per stage (benchmarks/throughput.py), and the
#      fixed-architecture step once more with the cudagraphs compile backend;
#   2. ranking with 1 / 8 / 16 / 32 architectures in flight (benchmarks/paths_in_flight.py), and the
#      SuperNet training speed of the four spaces on CUDA (benchmarks/spaces.py, speed part);
#   3. the real search loop (benchmarks/search_loop.py: NATS-TSS, trained HyperNet), eager against
#      the fast paths, per-epoch losses, rewards and the final alpha compared;
#   4. the ground-truth stage with 1, 4 and 8 workers sharing the GPU (the distributed map);
#   5. the projected hours of `kedro run --env paper --pipelines=search` (benchmarks/paper_projection.py).
# Results go to $OUT (or ./gpu-results) as they arrive, so a run cut short still reports.
#   PYTHONPATH=src bash benchmarks/gpu_check.sh
# GPU_CHECK_SMOKE=1 runs every step on the CPU at toy sizes (a minute or two): it checks the
# wiring (arguments, the files each step writes, the projection reading them), not speed;
# the test suite runs it so that the script a scarce GPU session depends on cannot rot.
set -u
OUT="${OUT:-gpu-results}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="${PYTHONPATH:-src}" KEDRO_DISABLE_TELEMETRY=true
if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
    DEV=cpu
    THROUGHPUT=(--C 4 --N 1 --batch-size 16 --steps 2 --warm 1 --compile off --paths 4 --rank-valid 64)
    IN_FLIGHT=(--C 4 --N 1 --archs 4 --widths 1,2,4 --valid-images 128)
    SPACES=(--batch-size 4 --steps 1 --warm 1)
    LOOP=(--tiny --spaces nats_tss,nats_sss --hypernet trained)
    WORKERS=(--workers 1,2 --image-size 16 --C 4 --N 1 --archs 4 --epochs 1 --batch-size 64
             --train-limit 512 --warmup-epochs 1 --compile off)
    PROJECT=(--workers 2)
else
    DEV=cuda
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
    THROUGHPUT=(--steps 50)
    IN_FLIGHT=(--archs 32 --widths 1,8,16,32)
    SPACES=(--batch-size 256 --steps 20 --warm 5)
    LOOP=(--spaces nats_tss --hypernet trained --steps-per-epoch 8)
    # digits upscaled to 32x32 (no dataset to carry); C=16 N=5 as in the paper; eager
    # fine-tunes, so that what is timed is sharing the card, not compiling 32 networks (each
    # compile's seconds are in throughput.json)
    WORKERS=(--workers 1,4,8 --image-size 32 --C 16 --N 5 --archs 32 --epochs 4 --batch-size 64 --compile off)
    PROJECT=()
fi
timeout 160 "$PY" benchmarks/throughput.py --device "$DEV" "${THROUGHPUT[@]}" --json "$OUT/throughput.json" \
    > "$OUT/throughput.log" 2>&1
# the fixed-architecture step again with the cudagraphs backend (no Inductor code generation):
# its compile seconds (fixed_fast_setup_s) against Inductor's above decide what a ground-truth
# architecture should pay
timeout 70 "$PY" benchmarks/throughput.py --device "$DEV" "${THROUGHPUT[@]}" --stages fixed \
    --compile-backend cudagraphs --json "$OUT/throughput_fixed_cudagraphs.json" \
    > "$OUT/throughput_fixed_cudagraphs.log" 2>&1
timeout 50 "$PY" benchmarks/paths_in_flight.py --device "$DEV" "${IN_FLIGHT[@]}" \
    --json "$OUT/paths_in_flight.json" > "$OUT/paths_in_flight.log" 2>&1
timeout 55 "$PY" benchmarks/spaces.py --parts speed --device "$DEV" "${SPACES[@]}" \
    --json "$OUT/spaces_speed.json" > "$OUT/spaces_speed.log" 2>&1
timeout 45 "$PY" benchmarks/search_loop.py --device "$DEV" "${LOOP[@]}" \
    --json "$OUT/search_loop.json" > "$OUT/search_loop.log" 2>&1
timeout 180 "$PY" benchmarks/ground_truth_workers.py --device "$DEV" "${WORKERS[@]}" \
    --out "$OUT/ground_truth_workers.json" > "$OUT/ground_truth_workers.log" 2>&1
# the `paper` search pipeline's projected hours per stage, from the files above
# (${A[@]+"${A[@]}"}: an empty array under `set -u` on bash before 4.4 too)
"$PY" benchmarks/paper_projection.py "$OUT" ${PROJECT[@]+"${PROJECT[@]}"} --json "$OUT/projection.json" \
    > "$OUT/projection.log" 2>&1
tail -n 20 "$OUT"/*.log
