"""Process-wide XLA:CPU settings, applied by the entry points (run.py, benchmarks).

Two XLA:CPU options, both measured faster with the same results
(docs/speed.md):

* convolutions on Eigen rather than inside YNNPACK fusions (the DCGAN step);
* region-based copy insertion: without it XLA:CPU copies the parameters and
  optimizer moments in every iteration of the scanned train loop (XLA's GPU
  compiler uses this analysis by default).

They must be in XLA_FLAGS before jax is imported, so the library never sets
them on import; entry points call `use_fast_cpu_settings()` first thing.
"""

import os

CPU_FLAGS = (
    '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution',
    '--xla_cpu_copy_insertion_use_region_analysis=true',
)


def use_fast_cpu_settings() -> list[str]:
  """Adds each of CPU_FLAGS to XLA_FLAGS unless the user set that option already.

  Returns:
    The flags added.
  """
  current = os.environ.get('XLA_FLAGS', '')
  added = [flag for flag in CPU_FLAGS if flag.split('=')[0] not in current]
  if added:
    os.environ['XLA_FLAGS'] = ' '.join([current] + added).strip()
  return added
