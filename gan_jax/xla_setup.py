"""Process-wide XLA settings, applied by the entry points (run.py, benchmarks).

XLA:CPU runs convolutions fastest on Eigen rather than inside its default
YNNPACK fusions: with `CPU_CONV_FLAG` the DCGAN train step is ~25% faster,
with results equal to float rounding (measurements in README.md, Speed). It
must be in XLA_FLAGS before jax is imported, so the library never sets it on
import; entry points call `use_fast_cpu_convolutions()` first thing.
"""

import os

CPU_CONV_FLAG = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'


def use_fast_cpu_convolutions() -> bool:
  """Adds CPU_CONV_FLAG to XLA_FLAGS unless the user set that option already.

  Returns:
    True if the flag was added.
  """
  current = os.environ.get('XLA_FLAGS', '')
  if 'xla_cpu_experimental_ynn_fusion_type' in current:
    return False
  os.environ['XLA_FLAGS'] = f'{current} {CPU_CONV_FLAG}'.strip()
  return True
