# Sourced by the benchmarks/device_*.sh scripts: readies a lent GPU machine, which is bare and offline. cnnlab runs
# from this checkout (PYTHONPATH) under the machine's own torch; its pure-Python dependencies come as wheels in
# .whl/ (hydra-core, omegaconf, antlr4, torch-pruning, optuna, kornia, ...) and the Debian package's four
# Fashion-MNIST files in .fmnist/, put where cnnlab finds them offline (carry both). With QUICK set (a dry run on
# this machine, PYTHON=.venv/bin/python) nothing is installed or copied.
#   in:  OUT (the folder that comes back), PYTHON (default python3)     out: start, elapsed, left, say
start=$(date +%s)
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
elapsed() { echo $(( $(date +%s) - start )); }
left() { echo $(( ${DEADLINE_S:-570} - $(elapsed) )); }
say() { echo "[$(elapsed) s] $*" | tee -a "$OUT/steps.log"; }

if [ -z "${QUICK:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
    mkdir -p /usr/share/datasets/fashion-mnist && cp .fmnist/*.gz /usr/share/datasets/fashion-mnist/ || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
fi
export PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch, torchvision, cnnlab; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
      'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    | tee -a "$OUT/steps.log"
say "setup done"
