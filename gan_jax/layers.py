"""2-D convolution layers, drop-ins for flax's Conv/ConvTranspose, fast on XLA:CPU.

`Conv` and `ConvTranspose` have flax's parameters, initializers and dtype
semantics and compute the same function (tests/test_layers.py checks values
and gradients). Two things make them fast on XLA:CPU:

* 'SAME' `ConvTranspose` is a *sub-pixel* convolution (one stride-1
  convolution into sh*sw phase channels, then depth-to-space), so neither it
  nor its gradient is an input-dilated convolution (slow on XLA:CPU).
* Every convolution is `conv2d`, whose `jax.custom_vjp` emits only
  NHWC/HWIO convolutions, forward and backward. XLA:CPU's fast (Eigen) kernel
  needs that layout, and it only canonicalizes other layouts (which JAX's own
  convolution gradients use) in the entry computation, so inside `lax.scan`
  they became naive loops (jax-ml/jax#12868). Figures in docs/speed.md.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype
from jax import lax

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]
PaddingLike = str | Sequence[tuple[int, int]]
Pads = tuple[tuple[int, int], tuple[int, int]]

_DIMS = ('NHWC', 'HWIO', 'NHWC')


def _pair(v: int | Sequence[int] | None) -> tuple[int, int]:
  """Broadcasts an int (or None, meaning 1) to a 2-tuple like flax does."""
  if v is None:
    v = 1
  if isinstance(v, int):
    return (v, v)
  v = tuple(v)
  if len(v) != 2:
    raise ValueError(f'expected 2 spatial values, got {v}')
  return v  # type: ignore[return-value]


def _nhwc_conv(x: Array, kernel: Array, strides: Sequence[int], pads: Sequence[tuple[int, int]],
               precision: Any, rhs_dilation: Sequence[int] = (1, 1)) -> Array:
  """`lax.conv_general_dilated` in the NHWC/HWIO layout, nothing else."""
  return lax.conv_general_dilated(
      x, kernel, tuple(strides), [tuple(p) for p in pads],
      rhs_dilation=tuple(rhs_dilation), dimension_numbers=_DIMS,
      precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(x: Array, kernel: Array, strides: tuple[int, int], pads: Pads,
           precision: Any = None) -> Array:
  """NHWC x HWIO cross-correlation whose gradient is NHWC/HWIO convolutions too.

  Equals `lax.conv_general_dilated(x, kernel, strides, pads,
  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`, values and gradients.

  Args:
    x: (N, H, W, C).
    kernel: (KH, KW, C, O).
    strides: static (sh, sw).
    pads: static ((lo_h, hi_h), (lo_w, hi_w)); negative values crop.
    precision: passed to every convolution.

  Returns:
    (N, OH, OW, O) in x's dtype.
  """
  return _nhwc_conv(x, kernel, strides, pads, precision)


def _conv2d_fwd(x, kernel, strides, pads, precision):
  return _nhwc_conv(x, kernel, strides, pads, precision), (x, kernel)


def _conv2d_bwd(strides, pads, precision, res, dy):
  x, kernel = res
  x_dtype = x.dtype
  kh, kw = kernel.shape[:2]
  dx_pads, dk_pads = [], []
  for (lo, _), k, s, n_in, n_out in zip(pads, (kh, kw), strides, x.shape[1:3], dy.shape[1:3]):
    span = (n_out - 1) * s + 1  # dy's extent once dilated by the stride.
    lo_dx = k - 1 - lo
    # (lo, hi, interior): zeros between dy's pixels, then the border that
    # makes the stride-1 correlation below exactly x's size.
    dx_pads.append((lo_dx, n_in - span - lo_dx + k - 1, s - 1))
    # The kernel-gradient correlation's output is exactly (KH, KW).
    dk_pads.append((lo, k + span - 1 - n_in - lo))
  # dx[p] = sum_a dy_dilated[p + lo - a] kernel[a]: a stride-1 correlation of
  # the dilated dy with the spatially flipped kernel, in/out channels swapped.
  dy_dilated = lax.pad(dy, jnp.zeros((), dy.dtype),
                       ((0, 0, 0), dx_pads[0], dx_pads[1], (0, 0, 0)))
  k_flip = lax.rev(kernel, (0, 1)).transpose(0, 1, 3, 2)
  dx = _nhwc_conv(dy_dilated, k_flip, (1, 1), ((0, 0), (0, 0)), precision)
  # dk[a, c, o] = sum_{n, i} x_pad[n, s*i + a, c] dy[n, i, o]: the batch is the
  # contraction, so x^T (C, H, W, N) is the "input" and dy (OH, OW, N, O) the
  # "kernel", dilated by the stride; the result is (C, KH, KW, O).
  if np.prod(dy.shape[1:3]) > np.prod(x.shape[1:3]):
    # XLA swaps a convolution's operands (leaving NHWC/HWIO) when its kernel,
    # here dy, is spatially larger than its unpadded input (e.g. a 'VALID'
    # transposed conv); padding x before the transpose prevents that. Not
    # done otherwise: the convolution's own padding costs no copy.
    x = lax.pad(x, jnp.zeros((), x.dtype),
                ((0, 0, 0), (*dk_pads[0], 0), (*dk_pads[1], 0), (0, 0, 0)))
    dk_pads = [(0, 0), (0, 0)]
  dk = _nhwc_conv(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), (1, 1),
                  dk_pads, precision, rhs_dilation=strides)
  return dx.astype(x_dtype), dk.transpose(1, 2, 0, 3).astype(kernel.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def _subpixel_taps(k: int, s: int) -> tuple[np.ndarray, int, int]:
  """Phase decomposition of a 1-D 'SAME' transposed convolution.

  `lax.conv_transpose(..., 'SAME', transpose_kernel=False)` (what flax uses)
  dilates the input by `s`, pads it by (pad_a, pad_b) and correlates with the
  unflipped kernel, so output `o = s*p + r` reads kernel tap `t` from input
  `p + d` with `d = (r + t - pad_a) / s` wherever that is an integer. Hence each
  phase `r` is a stride-1 correlation over inputs `p + dmin .. p + dmax`.
  `k` is the kernel size, `s` the stride.

  Returns:
    (index, dmin, dmax): `index[j, r]` is the kernel tap used by phase `r` at
    window offset `dmin + j`, or `k` (a zero tap) where none is.
  """
  pad_a, _ = _conv_transpose_pads(k, s, 'SAME')
  hits = [(r, t, (r + t - pad_a) // s) for r in range(s) for t in range(k)
          if (r + t - pad_a) % s == 0]
  ds = [d for _, _, d in hits]
  dmin, dmax = min(ds), max(ds)
  index = np.full((dmax - dmin + 1, s), k, np.int32)
  for r, t, d in hits:
    index[d - dmin, r] = t
  return index, dmin, dmax


def conv_transpose2d_subpixel(x: Array, kernel: Array, strides: tuple[int, int],
                              precision: Any = None) -> Array:
  """Equals `lax.conv_transpose(x, kernel, strides, 'SAME')` (flax's formula).

  Computed as one stride-1 convolution of the *undilated* input with a
  (T, T, C, sh*sw*O) kernel gathered from `kernel` (zeros where a phase has no
  tap), followed by depth-to-space. No zeros are inserted into the input, so
  neither the forward pass nor its gradient needs a dilated convolution.

  Args:
    x: (N, H, W, C).
    kernel: (KH, KW, C, O), flax's ConvTranspose layout.
    strides: (sh, sw).
    precision: passed to the convolution.

  Returns (N, H*sh, W*sw, O).
  """
  n, h, w, c = x.shape
  kh, kw, _, o = kernel.shape
  sh, sw = strides
  idx_h, dmin_h, dmax_h = _subpixel_taps(kh, sh)
  idx_w, dmin_w, dmax_w = _subpixel_taps(kw, sw)
  pads = ((-dmin_h, dmax_h), (-dmin_w, dmax_w))
  if sh == sw == 1 and (idx_h[:, 0] == np.arange(kh)).all() and (
      idx_w[:, 0] == np.arange(kw)).all():
    # Stride 1: a plain correlation with the same kernel.
    return conv2d(x, kernel, (1, 1), pads, precision)
  # Zero tap at index k, then gather (Th, sh, Tw, sw, C, O).
  kp = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  sub = kp[idx_h][:, :, idx_w]
  th, tw = idx_h.shape[0], idx_w.shape[0]
  sub = sub.transpose(0, 2, 4, 1, 3, 5).reshape(th, tw, c, sh * sw * o)
  y = conv2d(x, sub, (1, 1), pads, precision)  # (N, H, W, sh*sw*O)
  y = y.reshape(n, h, w, sh, sw, o).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n, h * sh, w * sw, o)


def _conv_transpose_pads(k: int, s: int, padding: str) -> tuple[int, int]:
  """The padding `lax.conv_transpose` applies to the dilated input (1-D)."""
  if padding.upper() == 'SAME':
    pad_len = k + s - 2
    pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
  elif padding.upper() == 'VALID':
    pad_len = k + s - 2 + max(k - s, 0)
    pad_a = k - 1
  else:
    raise ValueError(f"padding must be 'SAME', 'VALID' or pairs, got {padding!r}")
  return pad_a, pad_len - pad_a


def _flatten_batch(x: Array) -> tuple[Array, tuple[int, ...]]:
  """Folds all leading batch dims of an (..., H, W, C) array into one."""
  batch = x.shape[:-3]
  return x.reshape((-1,) + x.shape[-3:]), batch


class Conv(nn.Module):
  """Drop-in for `flax.linen.Conv` (2-D, NHWC), fast on XLA:CPU.

  Same parameters (`kernel` (KH, KW, in, out), optional `bias` (out,)), same
  default initializers and the same function as flax's Conv with
  `kernel_dilation=1, input_dilation=1, feature_group_count=1`.

  Attributes (as flax's):
    features: number of output channels.
    kernel_size, strides: an int or a pair each.
    padding: 'SAME', 'VALID' or ((lo, hi), (lo, hi)).
    use_bias, precision: whether to add a bias; passed to the convolution.
    dtype, param_dtype: computation dtype (None: promote) and parameter dtype.
    kernel_init, bias_init: the initializers.
  """
  features: int
  kernel_size: int | Sequence[int] = (5, 5)
  strides: int | Sequence[int] | None = 1
  padding: PaddingLike = 'SAME'
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: Any = None
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """Applies the convolution to (..., H, W, C) inputs."""
    kernel_size = _pair(self.kernel_size)
    strides = _pair(self.strides)
    x, batch = _flatten_batch(inputs)
    kernel = self.param('kernel', self.kernel_init,
                        kernel_size + (x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,),
                       self.param_dtype) if self.use_bias else None)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    if isinstance(self.padding, str):
      pads = lax.padtype_to_pads(x.shape[1:3], kernel_size, strides,
                                 self.padding)
    else:
      pads = [tuple(p) for p in self.padding]
    y = conv2d(x, kernel, strides, tuple(tuple(p) for p in pads), self.precision)
    if bias is not None:
      y += bias
    return y.reshape(batch + y.shape[1:])


class ConvTranspose(nn.Module):
  """Drop-in for `flax.linen.ConvTranspose` (2-D, NHWC), fast on XLA:CPU.

  Same parameters, default initializers and function as flax's ConvTranspose
  with `transpose_kernel=False, kernel_dilation=1`. 'SAME' padding is the
  sub-pixel form (`conv_transpose2d_subpixel`); 'VALID' or explicit padding is
  flax's formula (`lax.conv_transpose`) as a `conv2d` of the dilated input.

  Attributes (as flax's):
    features: number of output channels.
    kernel_size, strides: an int or a pair each.
    padding: 'SAME' (the fast path), 'VALID' or ((lo, hi), (lo, hi)).
    use_bias, precision: whether to add a bias; passed to the convolution.
    dtype, param_dtype: computation dtype (None: promote) and parameter dtype.
    kernel_init, bias_init: the initializers.
  """
  features: int
  kernel_size: int | Sequence[int] = (5, 5)
  strides: int | Sequence[int] | None = 1
  padding: PaddingLike = 'SAME'
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: Any = None
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """Applies the transposed convolution to (..., H, W, C) inputs."""
    kernel_size = _pair(self.kernel_size)
    strides = _pair(self.strides)
    x, batch = _flatten_batch(inputs)
    kernel = self.param('kernel', self.kernel_init,
                        kernel_size + (x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,),
                       self.param_dtype) if self.use_bias else None)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    if isinstance(self.padding, str) and self.padding.upper() == 'SAME':
      y = conv_transpose2d_subpixel(x, kernel, strides, self.precision)
    else:
      # What `lax.conv_transpose` computes: a stride-1 correlation of the
      # input dilated by the strides (zeros written out here, so that the
      # convolution and its gradient stay NHWC/HWIO).
      if isinstance(self.padding, str):
        pads = tuple(_conv_transpose_pads(k, s, self.padding)
                     for k, s in zip(kernel_size, strides))
      else:
        pads = tuple(tuple(p) for p in self.padding)
      zero = jnp.zeros((), x.dtype)
      x = lax.pad(x, zero, ((0, 0, 0), (0, 0, strides[0] - 1),
                            (0, 0, strides[1] - 1), (0, 0, 0)))
      y = conv2d(x, kernel, (1, 1), pads, self.precision)
    if bias is not None:
      y += bias
    return y.reshape(batch + y.shape[1:])
