"""Fast 2-D convolution layers for XLA:CPU, drop-ins for flax's Conv/ConvTranspose.

`ConvTranspose` and `Conv` have flax's parameters (`kernel` (KH, KW, in, out),
optional `bias`), initializers, `dtype`/`param_dtype` semantics and compute the
same function (tests/test_layers.py checks outputs and gradients against flax).

Why: XLA:CPU differentiates flax's stride-2 ConvTranspose (an input-dilated
convolution) ~10-25x slower than its forward pass. `ConvTranspose` with 'SAME'
padding is computed instead as a *sub-pixel* convolution: one stride-1
convolution of the undilated input with a (3, 3, C, 4*O) kernel gathered from
the (5, 5, C, O) one (zeros where a phase has no tap), then depth-to-space.
Neither it nor its gradient needs a dilated convolution. Stride-1 layers and
`Conv` keep `lax.conv_general_dilated` (measured to be the fastest here).

Measured (2 cores of an AMD EPYC with AVX-512 BF16, no AMX; a machine shared
with other jobs, so +-30% noise; batch 256, median wall ms, forward / forward +
gradients w.r.t. params and input; `python experiments/profile_layers.py`):

  layer                      flax fwd / f+g     this module fwd / f+g
  G deconv1 256->128 s1 f32    132 /  257          134 /  289  (same op)
  G deconv2 128->64  s2 f32     78 / 1026           43 /  122  (8.4x f+g)
  G deconv2 128->64  s2 bf16    80 / 1161           45 /  127  (9.2x f+g)
  G deconv3  64->1   s2 f32    3.6 /   12          4.6 /   14
  D conv1     1->64  s2 f32    3.1 /   11          2.6 /   10  (same op)
  D conv2    64->128 s2 f32     35 /  125           34 /  125  (same op)

Whole GAN train step (`python experiments/benchmark.py --arch=dcgan
--batch_size=256 --steps=6`): 2554 ms/step (100 img/s) with flax's layers ->
1467 ms/step (174 img/s) with these, 1149 ms/step (223 img/s) adding the XLA
flag below; bfloat16 is no faster (1185 ms; XLA:CPU runs bf16 convolutions in
f32).

Also measured and rejected (kept as `impl='gather'` for reproducibility): the
convolution as explicit patches + one matmul. Patch extraction moves 25x the
input through memory and this machine copies only ~2 GB/s per core:
concatenating 25 shifted slices cost more than the matmul itself (XLA:CPU's
concatenate runs at a fraction of copy speed; a row `jnp.take` runs at copy
speed), so even with bf16 matmuls (2x the f32 rate, but only with
`preferred_element_type=float32`; a bf16-output dot is 2-4x *slower*) the
stride-1 deconv1 took 2-3x longer than `lax.conv_general_dilated`, and a
4-output-channel matmul (deconv3) ~20x longer.

XLA flags (never set on import; run.py and experiments/benchmark.py add the
first one through gan_jax/xla_setup.py; elsewhere export XLA_FLAGS before starting Python):
  --xla_cpu_experimental_ynn_fusion_type=-individual_convolution
  removes convolutions from XLA:CPU's default YNNPACK fusions, so they run on
  Eigen: deconv1 f+g 260 -> 213 ms, deconv2 (sub-pixel) f+g 204 -> 84 ms,
  whole DCGAN step 1467 -> 1149 ms (f32) and 1478 -> 1185 ms (bf16); the MLP
  GAN (dots only) is unchanged (25 ms). Results agree to fp32 rounding (same
  losses to 1e-5 after 8 steps). An empty list (`..._ynn_fusion_type=`, all
  YNNPACK fusions off) does the same for convolutions but also moves dots
  and reductions off YNNPACK (MLP step 26 -> 28 ms).
  `--xla_cpu_experimental_xnn_fusion_type=individual_convolution` and
  `--xla_cpu_experimental_onednn_fusion_type=dot,eltwise` left the
  convolutions as they were (no measurable change).
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

_DIMS = ('NHWC', 'HWIO', 'NHWC')
IMPLS = ('lax', 'gather')


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


def _dot_out(x: Array, w: Array, precision: Any) -> Array:
  """`x @ w` over the last axis of `x`, accumulated in float32.

  With bfloat16 operands XLA:CPU's dot is 2-4x faster when it is asked for a
  float32 result (`preferred_element_type`) than for a bfloat16 one; we round
  back to the operand dtype afterwards, which is also what flax returns.
  """
  acc = jnp.float32 if x.dtype in (jnp.bfloat16, jnp.float16) else None
  y = lax.dot_general(
      x, w, (((x.ndim - 1,), (0,)), ((), ())),
      precision=precision, preferred_element_type=acc)
  return y.astype(x.dtype)


def conv2d_matmul(x: Array, kernel: Array, strides: tuple[int, int],
                  pads: Sequence[tuple[int, int]], precision: Any = None) -> Array:
  """NHWC x HWIO convolution as shifted-slice patch extraction + one matmul.

  Equals `lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=
  ('NHWC', 'HWIO', 'NHWC'))`. The patches are built with `lax.pad` and strided
  `lax.slice`s concatenated along channels (XLA:CPU's
  `conv_general_dilated_patches` is slow). Measured slower than
  `lax.conv_general_dilated` on this CPU (see the module docstring).

  Args:
    x: input, (N, H, W, C).
    kernel: (KH, KW, C, O).
    strides: window strides (sh, sw).
    pads: ((lo_h, hi_h), (lo_w, hi_w)); negative values crop.
    precision: passed to the dot.

  Returns:
    (N, OH, OW, O) in x's dtype.
  """
  n, _, _, c = x.shape
  kh, kw, _, o = kernel.shape
  sh, sw = strides
  zero = jnp.zeros((), x.dtype)
  xp = lax.pad(x, zero, ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
  hp, wp = xp.shape[1:3]
  oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
  if kh == kw == 1 and sh == sw == 1:
    patches = xp
  else:
    # Order (i, j, c) matches kernel.reshape(kh * kw * c, o).
    patches = jnp.concatenate([
        lax.slice(xp, (0, i, j, 0),
                  (n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c),
                  (1, sh, sw, 1))
        for i in range(kh) for j in range(kw)
    ], axis=-1)
  return _dot_out(patches, kernel.reshape(kh * kw * c, o), precision)


def _patch_index(hp: int, wp: int, kh: int, kw: int, oh: int, ow: int
                 ) -> np.ndarray:
  """Flat (row-major) positions in an (hp, wp) image of every stride-1 patch.

  Returns an int32 array of shape (oh * ow * kh * kw,), ordered
  (out_row, out_col, tap_row, tap_col) so that gathered patches reshape to
  (oh, ow, kh * kw * C) in the order of kernel.reshape(kh * kw * C, O).
  """
  r = np.arange(oh)[:, None, None, None] + np.arange(kh)[None, None, :, None]
  c = np.arange(ow)[None, :, None, None] + np.arange(kw)[None, None, None, :]
  return (r * wp + c).reshape(-1).astype(np.int32)


def _im2col_s1(x: Array, kh: int, kw: int,
               pads: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  """Stride-1 patches (N, OH, OW, KH*KW*C) of x (N, H, W, C) by one gather.

  A row gather of C-contiguous pixels runs at memcpy speed on XLA:CPU, about
  2.5x (f32) to 8x (bf16) faster than concatenating 25 shifted slices.
  """
  n, _, _, c = x.shape
  zero = jnp.zeros((), x.dtype)
  xp = lax.pad(x, zero, ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
  hp, wp = xp.shape[1:3]
  oh, ow = hp - kh + 1, wp - kw + 1
  idx = _patch_index(hp, wp, kh, kw, oh, ow)
  patches = jnp.take(xp.reshape(n, hp * wp, c), idx, axis=1, mode='clip')
  return patches.reshape(n, oh, ow, kh * kw * c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d_s1_gather(x: Array, kernel: Array,
                     pads: tuple[tuple[int, int], tuple[int, int]],
                     precision: Any = None) -> Array:
  """Stride-1 NHWC x HWIO correlation as gathered patches + one matmul.

  Equals `lax.conv_general_dilated(x, kernel, (1, 1), pads, ...)`. Its
  custom VJP keeps the backward pass matmul-shaped too: the kernel gradient
  is patches^T @ dy and the input gradient is the same kind of stride-1
  correlation of dy with the flipped, transposed kernel (no scatter-add).

  Args:
    x: (N, H, W, C).
    kernel: (KH, KW, C, O).
    pads: static ((lo_h, hi_h), (lo_w, hi_w)); negative values crop.
    precision: passed to the dots.

  Returns:
    (N, OH, OW, O) in x's dtype.
  """
  return _conv2d_s1_gather_fwd(x, kernel, pads, precision)[0]


def _conv2d_s1_gather_fwd(x, kernel, pads, precision):
  kh, kw, c, o = kernel.shape
  patches = _im2col_s1(x, kh, kw, pads)
  y = _dot_out(patches, kernel.reshape(kh * kw * c, o), precision)
  return y, (patches, x.shape, kernel)


def _conv2d_s1_gather_bwd(pads, precision, res, dy):
  patches, x_shape, kernel = res
  kh, kw, c, o = kernel.shape
  acc = jnp.float32 if dy.dtype in (jnp.bfloat16, jnp.float16) else None
  dk = lax.dot_general(patches, dy, (((0, 1, 2), (0, 1, 2)), ((), ())),
                       precision=precision, preferred_element_type=acc)
  dk = dk.reshape(kernel.shape).astype(kernel.dtype)
  # dx[i] = sum_t dy[i + lo - t] k[t]: a correlation of dy with the flipped
  # kernel, padded so that the output has x's spatial size.
  back_pads = []
  for (lo, _), k, n_in, n_out in zip(pads, (kh, kw), x_shape[1:3],
                                     dy.shape[1:3]):
    lo2 = k - 1 - lo
    back_pads.append((lo2, n_in - n_out + k - 1 - lo2))
  kflip = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
  dx = conv2d_s1_gather(dy, kflip, tuple(back_pads), precision)
  return dx.astype(dy.dtype), dk


conv2d_s1_gather.defvjp(_conv2d_s1_gather_fwd, _conv2d_s1_gather_bwd)


def _conv2d(x: Array, kernel: Array, strides: tuple[int, int],
            pads: Sequence[tuple[int, int]], impl: str, precision: Any) -> Array:
  """Dispatches a 2-D NHWC convolution to `impl`."""
  if impl == 'gather' and tuple(strides) == (1, 1):
    return conv2d_s1_gather(x, kernel, tuple(tuple(p) for p in pads),
                            precision)
  if impl == 'gather':  # Strided: shifted-slice patches + one matmul.
    return conv2d_matmul(x, kernel, strides, pads, precision)
  if impl == 'lax':
    return lax.conv_general_dilated(
        x, kernel, strides, [tuple(p) for p in pads],
        dimension_numbers=_DIMS, precision=precision)
  raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')


def _subpixel_taps(k: int, s: int) -> tuple[np.ndarray, int, int]:
  """Phase decomposition of a 1-D 'SAME' transposed convolution.

  `lax.conv_transpose(..., 'SAME', transpose_kernel=False)` (what flax uses)
  dilates the input by `s`, pads it by (pad_a, pad_b) and correlates with the
  unflipped kernel, so output `o = s*p + r` reads kernel tap `t` from input
  `p + d` with `d = (r + t - pad_a) / s` wherever that is an integer. Hence each
  phase `r` is a stride-1 correlation over inputs `p + dmin .. p + dmax`.

  Args:
    k: kernel size.
    s: stride.

  Returns:
    (index, dmin, dmax): `index[j, r]` is the kernel tap used by phase `r` at
    window offset `dmin + j`, or `k` (a zero tap) where none is.
  """
  pad_len = k + s - 2
  pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
  hits = [(r, t, (r + t - pad_a) // s) for r in range(s) for t in range(k)
          if (r + t - pad_a) % s == 0]
  ds = [d for _, _, d in hits]
  dmin, dmax = min(ds), max(ds)
  index = np.full((dmax - dmin + 1, s), k, np.int32)
  for r, t, d in hits:
    index[d - dmin, r] = t
  return index, dmin, dmax


def conv_transpose2d_subpixel(x: Array, kernel: Array, strides: tuple[int, int],
                              impl: str = 'lax',
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
    impl: how the stride-1 convolution is computed (see `IMPLS`).
    precision: passed to the convolution.

  Returns:
    (N, H*sh, W*sw, O).
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
    return _conv2d(x, kernel, (1, 1), pads, impl, precision)
  # Zero tap at index k, then gather (Th, sh, Tw, sw, C, O).
  kp = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  sub = kp[idx_h][:, :, idx_w]
  th, tw = idx_h.shape[0], idx_w.shape[0]
  sub = sub.transpose(0, 2, 4, 1, 3, 5).reshape(th, tw, c, sh * sw * o)
  y = _conv2d(x, sub, (1, 1), pads, impl, precision)  # (N, H, W, sh*sw*O)
  y = y.reshape(n, h, w, sh, sw, o).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n, h * sh, w * sw, o)


def _flatten_batch(x: Array) -> tuple[Array, tuple[int, ...]]:
  """Folds all leading batch dims of an (..., H, W, C) array into one."""
  batch = x.shape[:-3]
  return x.reshape((-1,) + x.shape[-3:]), batch


class Conv(nn.Module):
  """Drop-in for `flax.linen.Conv` (2-D, NHWC), fast on XLA:CPU.

  Same parameters (`kernel` (KH, KW, in, out), optional `bias` (out,)), same
  default initializers and the same function as flax's Conv with
  `kernel_dilation=1, input_dilation=1, feature_group_count=1`.

  Attributes:
    features: number of output channels.
    kernel_size: (KH, KW) or an int.
    strides: int or (sh, sw).
    padding: 'SAME', 'VALID' or ((lo, hi), (lo, hi)), as in flax.
    use_bias: whether to add a bias.
    dtype: computation dtype (None: promote inputs and params).
    param_dtype: parameter dtype.
    precision: passed to the dot/convolution.
    kernel_init: kernel initializer.
    bias_init: bias initializer.
    impl: 'lax' (`lax.conv_general_dilated`, what flax runs; the fastest
      measured here) or 'gather' (patches + one matmul; slower here).
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
  impl: str = 'lax'

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
    y = _conv2d(x, kernel, strides, pads, self.impl, self.precision)
    if bias is not None:
      y += bias
    return y.reshape(batch + y.shape[1:])


class ConvTranspose(nn.Module):
  """Drop-in for `flax.linen.ConvTranspose` (2-D, NHWC), fast on XLA:CPU.

  Same parameters (`kernel` (KH, KW, in, out), optional `bias` (out,)), same
  default initializers and the same function as flax's ConvTranspose with
  `transpose_kernel=False, kernel_dilation=1`. 'SAME' padding uses the
  sub-pixel formulation (`conv_transpose2d_subpixel`); any other padding falls
  back to `lax.conv_transpose`, exactly as flax.

  Attributes:
    features: number of output channels.
    kernel_size: (KH, KW) or an int.
    strides: int or (sh, sw).
    padding: 'SAME' (fast path), or anything `lax.conv_transpose` accepts.
    use_bias: whether to add a bias.
    dtype: computation dtype (None: promote inputs and params).
    param_dtype: parameter dtype.
    precision: passed to the dot/convolution.
    kernel_init: kernel initializer.
    bias_init: bias initializer.
    impl: 'lax' (fastest measured here) or 'gather': how the stride-1
      convolution of the sub-pixel formulation is computed.
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
  impl: str = 'lax'

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
      y = conv_transpose2d_subpixel(x, kernel, strides, self.impl,
                                    self.precision)
    else:
      padding = (self.padding if isinstance(self.padding, str)
                 else [tuple(p) for p in self.padding])
      y = lax.conv_transpose(x, kernel, strides, padding,
                             dimension_numbers=_DIMS,
                             precision=self.precision)
    if bias is not None:
      y += bias
    return y.reshape(batch + y.shape[1:])
