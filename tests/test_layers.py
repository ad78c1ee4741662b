"""gan_jax.layers computes flax's and lax's convolutions, gradients included,
with only NHWC/HWIO convolutions (fast inside loops on XLA:CPU)."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

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


def _pair(kind: str, features: int, stride: int, use_bias: bool, dtype=None,
          kernel_size=(5, 5), padding='SAME'):
  kw = dict(kernel_size=kernel_size, strides=(stride, stride), padding=padding,
            use_bias=use_bias, dtype=dtype)
  if kind == 'convT':
    return nn.ConvTranspose(features, **kw), layers.ConvTranspose(features, **kw)
  return nn.Conv(features, **kw), layers.Conv(features, **kw)


def _random_params(shapes, key):
  """Random (not zero) values everywhere, so biases are tested too."""
  leaves, tree = jax.tree_util.tree_flatten(shapes)
  keys = jax.random.split(key, len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [jax.random.normal(k, v.shape, v.dtype) for k, v in zip(keys, leaves)])


def _forward_and_vjp(fn):
  """One jitted function (XLA:CPU compiles are the cost of these tests)."""
  def f(params, x, ct):
    y, vjp = jax.vjp(fn, params, x)
    return y, vjp(ct)
  return jax.jit(f)


def _assert_close(ref, got, rtol, atol):
  """Outputs and gradients are sums of up to thousands of float32 terms: the
  absolute tolerance is relative to each array's largest magnitude."""
  f32 = lambda t: np.asarray(t, np.float32)
  for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(got),
                  strict=True):
    assert a.shape == b.shape and a.dtype == b.dtype
    scale = max(1.0, float(np.abs(f32(a)).max()))
    np.testing.assert_allclose(f32(b), f32(a), rtol=rtol, atol=atol * scale)


def _check(kind, cin, cout, stride, size, use_bias, batch=3, dtype=None,
           rtol=1e-4, atol=1e-5, kernel_size=(5, 5), padding='SAME'):
  ref, fast = _pair(kind, cout, stride, use_bias, dtype, kernel_size, padding)
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
  # Gradients w.r.t. the kernel, the bias (if any) and the input.
  y_ref, grads_ref = _forward_and_vjp(ref.apply)(params, x, ct)
  y_fast, grads_fast = _forward_and_vjp(fast.apply)(params, x, ct)
  _assert_close((y_ref, grads_ref), (y_fast, grads_fast), rtol, atol)


@pytest.mark.parametrize('use_bias', [False, True])
@pytest.mark.parametrize('kind,cin,cout,stride,size', DCGAN_LAYERS)
def test_dcgan_layers_match_flax(kind, cin, cout, stride, size, use_bias):
  _check(kind, cin, cout, stride, size, use_bias)


@pytest.mark.parametrize('kind,cin,cout,stride,size', ODD_LAYERS)
def test_odd_shapes_match_flax(kind, cin, cout, stride, size):
  # Odd batch, odd sizes, strides 2 and 3, a non-square even/odd kernel.
  _check(kind, cin, cout, stride, size, stride == 2, batch=3,
         kernel_size=(3, 4) if stride == 3 else (5, 5))


@pytest.mark.parametrize('kind,stride,kernel_size,padding', [
    ('conv', 1, (3, 3), 'SAME'),
    ('conv', 2, (3, 3), 'VALID'),
    ('conv', 3, (5, 5), ((2, 0), (1, 3))),
    ('convT', 1, (3, 3), 'SAME'),
    ('convT', 2, (5, 5), 'VALID'),
    ('convT', 3, (3, 3), 'VALID'),
    ('convT', 2, (3, 3), ((1, 2), (0, 1))),
])
def test_3x3_kernels_valid_and_explicit_padding_match_flax(kind, stride, kernel_size,
                                                           padding):
  _check(kind, 3, 4, stride, 9, True, batch=2, kernel_size=kernel_size,
         padding=padding)


# (input size, kernel size, stride, ((lo, hi), (lo, hi))): the DCGAN's
# discriminator convolutions and sub-pixel convolutions, then odd cases:
# asymmetric SAME padding, strides that leave trailing rows unread, crops.
LAX_CASES = [
    ((28, 28), (5, 5), (2, 2), ((1, 2), (1, 2))),
    ((14, 14), (5, 5), (2, 2), ((1, 2), (1, 2))),
    ((7, 7), (5, 5), (1, 1), ((2, 2), (2, 2))),
    ((7, 7), (3, 3), (1, 1), ((1, 1), (1, 1))),
    ((9, 8), (3, 4), (3, 2), ((1, 1), (1, 2))),
    ((11, 10), (5, 3), (3, 3), ((0, 0), (0, 0))),
    ((10, 9), (4, 4), (2, 3), ((3, -1), (-1, 2))),
    ((6, 6), (2, 2), (1, 1), ((0, 1), (1, 0))),
]


@pytest.mark.parametrize('size,kernel,strides,pads', LAX_CASES)
def test_conv2d_matches_lax_values_and_gradients(size, kernel, strides, pads):
  kx, kk, kc = jax.random.split(jax.random.PRNGKey(sum(size) + sum(strides)), 3)
  x = jax.random.normal(kx, (3,) + size + (5,))
  k = jax.random.normal(kk, kernel + (5, 4))

  def ref(k, x):
    return lax.conv_general_dilated(x, k, strides, pads,
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def fast(k, x):
    return layers.conv2d(x, k, strides, pads)

  ct = jax.random.normal(kc, jax.eval_shape(ref, k, x).shape)
  _assert_close(_forward_and_vjp(ref)(k, x, ct), _forward_and_vjp(fast)(k, x, ct),
                rtol=1e-4, atol=1e-5)


def test_same_initial_values_as_flax():
  x = jnp.ones((2, 7, 7, 8))
  key = jax.random.PRNGKey(0)
  for ref, fast in (_pair('convT', 4, 2, True), _pair('conv', 4, 2, True)):
    jax.tree_util.tree_map(np.testing.assert_array_equal,
                           ref.init(key, x), fast.init(key, x))


@pytest.mark.parametrize('kind,cin,cout,stride,size', DCGAN_LAYERS)
def test_bfloat16_close_to_flax(kind, cin, cout, stride, size):
  # bf16 has an 8-bit mantissa; both sides round differently.
  _check(kind, cin, cout, stride, size, True, dtype=jnp.bfloat16,
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


def test_gradients_inside_scan_compile_to_nhwc_hwio_convolutions_only():
  # XLA:CPU runs a convolution on its fast kernel only in this layout, and
  # does not rewrite other layouts inside a while loop (jax-ml/jax#12868).
  # 'b01f_01io->b01f' is how XLA prints NHWC x HWIO -> NHWC.
  conv = layers.Conv(4, (5, 5), strides=(2, 2))
  convt = layers.ConvTranspose(3, (5, 5), strides=(2, 2))
  convt_valid = layers.ConvTranspose(3, (3, 3), strides=(2, 2), padding='VALID')
  x = jnp.ones((2, 9, 9, 3))
  params = [m.init(jax.random.PRNGKey(0), x) for m in (conv, convt, convt_valid)]

  def loss(params, x):
    return sum(jnp.sum(m.apply(p, x) ** 2)
               for m, p in zip((conv, convt, convt_valid), params))

  def train(params, x):
    def body(params, _):
      grads, dx = jax.grad(loss, argnums=(0, 1))(params, x)
      params = jax.tree_util.tree_map(lambda p, g: p - 1e-3 * g, params, grads)
      return params, jnp.sum(dx)
    return lax.scan(body, params, None, length=3)

  hlo = jax.jit(train).lower(params, x).compile().as_text()
  assert re.search(r'\bwhile\(', hlo), 'expected the scan to stay a loop'
  convs = [line for line in hlo.splitlines() if ' convolution(' in line]
  # Forward and both gradients of three layers, possibly fused or deduplicated.
  assert len(convs) >= 6, hlo
  labels = [re.search(r'dim_labels=([^,\s]+)', line).group(1) for line in convs]
  assert set(labels) == {'b01f_01io->b01f'}, labels
  # No kernel reversal left for XLA to do (its fast kernel has none either).
  assert not any('rhs_reversal' in line for line in convs), convs
