"""`python -m gan_jax`: the same command line as run.py and `gan-jax`."""

from gan_jax import cli

cli.run()
