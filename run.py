"""Train a GAN on MNIST or Fashion-MNIST, or sample from a trained run.

  python run.py --dataset=mnist --epochs=30
  python run.py --mode=sample --workdir=RUN --num_samples=1000 --sample_dir=DIR
  python run.py --helpshort

The flags live in `gan_jax/cli.py` (also the `gan-jax` console command and
`python -m gan_jax`); this file only starts it from a checkout.
"""

from gan_jax import cli

if __name__ == '__main__':
  cli.run()
