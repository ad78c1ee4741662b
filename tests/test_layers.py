"""gan_jax.layers.{Conv,ConvTranspose} compute flax's functions, gradients included."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import layers

# (kind, in_channels, out_channels, stride, spatial size): every DCGAN layer.
DCGAN_LAYERS = [
    ('convT', 256, 128, 1, 7),
    ('convT', 128, 64, 2, 7),
    ('convT', 64, 1, 2, 14),
    ('conv', 1, 64, 2, 28),
    ('conv', 64, 128, 2, 14),
]
# Odd shapes: odd sizes, stride 3, non-square kernels' worth of edge cases.
ODD_LAYERS = [
    ('convT', 5, 3, 2, 5),
    ('convT', 4, 2, 3, 4),
    ('conv', 3, 4, 2, 9),
    ('conv', 3, 2, 3, 11),
]
IMPLS = layers.IMPLS


def _pair(kind: str, features: int, stride: int, use_bias: bool, impl: str,
          dtype=None, kernel_size=(5, 5)):
  kw = dict(kernel_size=kernel_size, strides=(stride, stride), padding='SAME',
            use_bias=use_bias, dtype=dtype)
  if kind == 'convT':
    return (nn.ConvTranspose(features, **kw),
            layers.ConvTranspose(features, impl=impl, **kw))
  return nn.Conv(features, **kw), layers.Conv(features, impl=impl, **kw)


def _random_params(shapes, key):
  """Random (not zero) values everywhere, so biases are tested too."""
  leaves, tree = jax.tree_util.tree_flatten(shapes)
  keys = jax.random.split(key, len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [jax.random.normal(k, v.shape, v.dtype) for k, v in zip(keys, leaves)])


def _forward_and_vjp(module):
  """One jitted function (XLA:CPU compiles are the cost of these tests)."""
  def f(params, x, ct):
    y, vjp = jax.vjp(module.apply, params, x)
    return y, vjp(ct)
  return jax.jit(f)


def _check(kind, cin, cout, stride, size, use_bias, impl, batch=3,
           dtype=None, rtol=1e-4, atol=1e-5, kernel_size=(5, 5)):
  ref, fast = _pair(kind, cout, stride, use_bias, impl, dtype, kernel_size)
  kx, kp, kc = jax.random.split(jax.random.PRNGKey(cin * 100 + cout), 3)
  x = jax.random.normal(kx, (batch, size, size, cin), jnp.float32)
  if dtype is not None:
    x = x.astype(dtype)
  # Same parameter names, shapes and dtypes (no compile: abstract init).
  shapes_ref = jax.eval_shape(ref.init, kp, x)
  assert jax.eval_shape(fast.init, kp, x) == shapes_ref
  params = _random_params(shapes_ref, kp)

  y_shape = jax.eval_shape(ref.apply, params, x)
  ct = jax.random.normal(kc, y_shape.shape, jnp.float32).astype(y_shape.dtype)
  y_ref, grads_ref = _forward_and_vjp(ref)(params, x, ct)
  y_fast, grads_fast = _forward_and_vjp(fast)(params, x, ct)
  assert y_ref.shape == y_fast.shape and y_ref.dtype == y_fast.dtype
  f32 = lambda t: np.asarray(t, np.float32)
  # Outputs and gradients are sums of up to thousands of terms: the absolute
  # tolerance is relative to each array's largest magnitude.
  for a, b in zip(jax.tree_util.tree_leaves((y_ref, grads_ref)),
                  jax.tree_util.tree_leaves((y_fast, grads_fast))):
    assert a.shape == b.shape and a.dtype == b.dtype
    scale = max(1.0, float(np.abs(f32(a)).max()))
    np.testing.assert_allclose(f32(b), f32(a), rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize('use_bias', [False, True])
@pytest.mark.parametrize('kind,cin,cout,stride,size', DCGAN_LAYERS)
def test_dcgan_layers_match_flax(kind, cin, cout, stride, size, use_bias):
  _check(kind, cin, cout, stride, size, use_bias, 'lax')


@pytest.mark.parametrize('kind,cin,cout,stride,size', DCGAN_LAYERS)
def test_gather_impl_matches_flax(kind, cin, cout, stride, size):
  # The alternative (non-default) formulation; compiles slower, so one variant.
  _check(kind, cin, cout, stride, size, kind == 'conv', 'gather', batch=2)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('kind,cin,cout,stride,size', ODD_LAYERS)
def test_odd_shapes_match_flax(kind, cin, cout, stride, size, impl):
  # Odd batch, odd sizes, strides 2 and 3, a non-square even/odd kernel.
  _check(kind, cin, cout, stride, size, stride == 2, impl, batch=3,
         kernel_size=(3, 4) if stride == 3 else (5, 5))


def test_same_initial_values_as_flax():
  x = jnp.ones((2, 7, 7, 8))
  key = jax.random.PRNGKey(0)
  for ref, fast in (_pair('convT', 4, 2, True, 'lax'),
                    _pair('conv', 4, 2, True, 'lax')):
    jax.tree_util.tree_map(np.testing.assert_array_equal,
                           ref.init(key, x), fast.init(key, x))


@pytest.mark.parametrize('kind,cin,cout,stride,size', DCGAN_LAYERS)
def test_bfloat16_close_to_flax(kind, cin, cout, stride, size):
  # bf16 has an 8-bit mantissa; both sides round differently.
  _check(kind, cin, cout, stride, size, True, 'lax', dtype=jnp.bfloat16,
         rtol=5e-2, atol=1e-1)


def test_param_count_and_extra_batch_dims():
  fast = layers.ConvTranspose(64, (5, 5), strides=(2, 2), use_bias=False)
  x = jnp.ones((2, 3, 7, 7, 128))
  params = fast.init(jax.random.PRNGKey(0), x)
  assert jax.tree_util.tree_map(jnp.shape, params) == {
      'params': {'kernel': (5, 5, 128, 64)}}
  assert fast.apply(params, x).shape == (2, 3, 14, 14, 64)
  conv = layers.Conv(128, (5, 5), strides=(2, 2))
  p = conv.init(jax.random.PRNGKey(0), jnp.ones((3, 14, 14, 64)))
  assert jax.tree_util.tree_map(jnp.shape, p) == {
      'params': {'kernel': (5, 5, 64, 128), 'bias': (128,)}}
