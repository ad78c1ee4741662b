#!/usr/bin/env bash
# Side-by-side training throughput: gan_jax vs the Keras and PyTorch peers in
# ../shared/peers, one after another (never two at once), batch 256.
#
#   bash experiments/compare_peers.sh            # prints one JSON line per run
#
# Needs the project venv (.venv) and the peers' own venv:
#   python3 -m venv /tmp/peers && /tmp/peers/bin/pip install -q torch==2.13.0 tensorflow-cpu
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=../shared/peers
PEER_PY=${PEER_PY:-/tmp/peers/bin/python}
for arch in mlp dcgan; do
  steps=$([ "$arch" = mlp ] && echo 200 || echo 20)
  .venv/bin/python experiments/benchmark.py --arch=$arch --batch_size=256 --steps=$steps | tail -1
  .venv/bin/python experiments/benchmark.py --arch=$arch --batch_size=256 --steps=$steps --dtype=bfloat16 | tail -1
  "$PEER_PY" $PEERS/peer_keras.py --arch=$arch --batch_size=256 --steps=$steps 2>/dev/null | tail -1
  "$PEER_PY" $PEERS/peer_torch.py --arch=$arch --batch_size=256 --steps=$steps 2>/dev/null | tail -1
done
