#!/usr/bin/env bash
# Side-by-side training throughput: gan_jax vs the Keras and PyTorch peers in
# ../shared/peers, one after another (never two at once).
#
#   bash experiments/compare_peers.sh            # prints one JSON line per run
#
# 1. The default run at its default batch (32): the images/s of the second
#    epoch of `run.py --epochs=2` (metrics.jsonl, real MNIST data, everything
#    an epoch does), for the default network and for --arch=mlp (the peers'
#    network), beside the peers' train step at batch 32.
# 2. The train step alone at batch 256, float32 and bfloat16, for both networks.
#
# Needs the project venv (.venv), the data in ../shared/tfds (or TFDS_DATA_DIR)
# and the peers' own venv:
#   python3 -m venv /tmp/peers && /tmp/peers/bin/pip install -q torch==2.13.0 tensorflow-cpu
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then  # The comment above, as usage.
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
  exit 0
fi
cd "$(dirname "$0")/.."
PEERS=../shared/peers
PEER_PY=${PEER_PY:-/tmp/peers/bin/python}
DATA=${TFDS_DATA_DIR:-../shared/tfds}

# The default network (mlp_bn: BatchNorm in G), then the peers' own (mlp).
for arch in mlp_bn mlp; do
  run=$(mktemp -d)
  .venv/bin/python run.py --arch=$arch --epochs=2 --save_interval=2 --eval_samples=500 \
      --noprogress --data_dir="$DATA" --workdir="$run" > /dev/null
  .venv/bin/python -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1])][-1]; \
print(json.dumps({'what': 'run.py --arch=' + sys.argv[2] + ' epoch', 'batch_size': 32, \
                  'images_per_s': r['images_per_s']}))" "$run/metrics.jsonl" $arch
  rm -rf "$run"
done
"$PEER_PY" $PEERS/peer_keras.py --arch=mlp --batch_size=32 --steps=400 2>/dev/null | tail -1
"$PEER_PY" $PEERS/peer_torch.py --arch=mlp --batch_size=32 --steps=400 2>/dev/null | tail -1

for arch in mlp dcgan; do
  steps=$([ "$arch" = mlp ] && echo 200 || echo 20)
  .venv/bin/python experiments/benchmark.py --arch=$arch --batch_size=256 --steps=$steps | tail -1
  .venv/bin/python experiments/benchmark.py --arch=$arch --batch_size=256 --steps=$steps --dtype=bfloat16 | tail -1
  "$PEER_PY" $PEERS/peer_keras.py --arch=$arch --batch_size=256 --steps=$steps 2>/dev/null | tail -1
  "$PEER_PY" $PEERS/peer_torch.py --arch=$arch --batch_size=256 --steps=$steps 2>/dev/null | tail -1
done
