#!/usr/bin/env bash
# The throughput benchmarks on one CUDA GPU, in one command (about 9 minutes on an H100/H200):
#
#     bash benchmarks/gpu_suite.sh OUTDIR
#
# Each benchmark's tables go to OUTDIR/<name>.md (its stderr tail appended); one that fails
# or runs past its time limit does not stop the others. PYTHON picks the interpreter,
# DEVICE the torch device, SIZE the slide side in level-0 px, WORKERS the reader threads.
set -u
out=${1:?usage: gpu_suite.sh OUTDIR}
mkdir -p "$out"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
size=${SIZE:-16384}
workers=${WORKERS:-12}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

bench() {  # NAME SECONDS SCRIPT ARGS...
    local name=$1 limit=$2
    shift 2
    echo "### $name ($(date +%T)): $*"
    timeout "$limit" "$py" "$@" >"$out/$name.md" 2>"$out/$name.err"
    local status=$?
    { echo; echo "exit status $status; stderr tail:"; tail -n 15 "$out/$name.err"; } >>"$out/$name.md"
    rm -f "$out/$name.err"
    cat "$out/$name.md"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$py" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'
  nproc; } >"$out/machine.txt" 2>&1
cat "$out/machine.txt"

r101=(--encoder resnet101 --tile-px 512 --batch-size 32 --block-tiles 4)
demo_dir=$(mktemp -d)
# Most telling first: a run cut short by the command's time limit keeps what finished.
bench pipeline-r101 200 benchmarks/bench_pipeline.py --device "$device" --size "$size" \
    --read-workers "$workers" "${r101[@]}"
bench tiatoolbox 150 benchmarks/bench_tiatoolbox.py --device "$device" --size 8192 \
    --read-workers "$workers" --tia-workers "$workers" "${r101[@]}"
# The demo on the GPU (resnet18 trained on synthetic tiles, a slide, F1 against its truth);
# its model, trained, is the one whose cells fp32 and the fast precisions must agree on,
# and whose outputs the engine benchmark replays.
bench demo 150 -m wsi_ihc.cli.demo --out "$demo_dir" --device "$device" --epochs 4
bench engine 120 benchmarks/bench_engine.py --device "$device" --size "$size" \
    --read-workers "$workers" --block-tiles 16 --model "$demo_dir/run/model.ckpt"
# nvJPEG on the raw tiles: same pixels as the CPU decoder? how fast? (decoding is half the
# engine's CPU, RESULTS.md: "The engine's CPU per pixel")
bench gpu-jpeg 60 benchmarks/bench_gpu_jpeg.py --device "$device" --tiles 2048
bench precision 100 benchmarks/bench_precision.py --device "$device" --size 4096 \
    --precisions fp32,bf16,fp16 --read-workers "$workers" --model "$demo_dir/run/model.ckpt"
rm -rf "$demo_dir"
# Decoding JPEG tiles directly vs OpenSlide's read_region: alone, then end to end.
bench read 120 benchmarks/bench_read.py --size "$size" --threads "1,4,$workers" --repeats 2
bench pipeline-r18 100 benchmarks/bench_pipeline.py --device "$device" --size "$size" \
    --read-workers "$workers" --encoder resnet18 --tile-px 256 --batch-size 64 --block-tiles 8
bench flops 100 benchmarks/bench_flops.py --device "$device" --batch 32 --matmul-n 8192 \
    --precisions bf16,fp16,fp32
bench pipeline-r101-openslide 200 benchmarks/bench_pipeline.py --device "$device" \
    --size "$size" --read-workers "$workers" --reader openslide --repeats 1 "${r101[@]}"
