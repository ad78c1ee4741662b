"""The one base class of every error a user is meant to read.

The command line (`gan_jax.cli`) prints the message of a `GanJaxError` as one
line, ``error: ...``, and exits with its `exit_code`; any other exception is a
bug and keeps its traceback.
"""


class GanJaxError(Exception):
  """A problem the user can fix; the message says what and how."""
  exit_code = 2
