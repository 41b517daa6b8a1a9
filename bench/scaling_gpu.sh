#!/usr/bin/env bash
# The Scaling benchmarks of README.md on a machine with GPUs (none was available when they
# were written; the CPU figures in README.md come from the same scripts with --device cpu).
#   bash bench/scaling_gpu.sh [N_GPUS]
set -euo pipefail
N=${1:-$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")}
export OMP_NUM_THREADS=1
# extraction: R3D-101 + audio ResNet-18, 720p 30 fps 3.5 s clips; knobs one at a time
python -m bench.extract_gpu --device cuda --clips 64 --workers 8 --batch-size 48
python -m bench.extract_gpu --device cuda --clips 64 --workers 8 --batch-size 48 --no-bf16 --skip-pipeline
python -m bench.extract_gpu --device cuda --clips 64 --workers 8 --batch-size 48 --no-pin-memory --skip-pipeline
python -m bench.extract_gpu --device cuda --clips 64 --workers 16 --batch-size 96 --skip-pipeline
# training steps/s of the attention model, bf16 autocast vs fp32
python -m bench.train --device cuda --batch-size 64 --amp bf16
python -m bench.train --device cuda --batch-size 64 --amp fp32
# torchrun 1 vs N processes (one GPU each), the same global batch
python -m bench.ddp_train --device cuda --batch-size 256 --compare "1,$N"
