"""gan_jax: a GAN for MNIST and Fashion-MNIST in JAX/Flax."""
