"""The command line: absl flags -> a validated `Config` -> the package.

  gan-jax --dataset=mnist --epochs=30            (the console command)
  python -m gan_jax --dataset=mnist --epochs=30  (the same)
  python run.py --dataset=mnist --epochs=30      (the same, from a checkout)
  gan-jax --mode=sample --workdir=RUN --num_samples=1000 --sample_dir=DIR
  gan-jax --mode=export --workdir=RUN --num_samples=60000 --export_dir=DIR

The only module that reads flags: it defines them, validates every value
before anything is written, and hands a `Config` to `gan_jax.trainer`. Errors
meant for the user (`errors.GanJaxError`) are printed as one ``error: ...``
line with the error's exit code; a write that fails anywhere (disk full,
permissions, read-only filesystem) is one line too, exit 4, its traceback in
WORKDIR/error.log (see docs/reliability.md for every exit code).
"""

from __future__ import annotations

import contextlib
import datetime
import faulthandler
import logging as std_logging
import os
import re
import sys
import threading
import traceback

from gan_jax import xla_setup

xla_setup.use_fast_cpu_settings()  # Before jax is imported (by absl or below).

from absl import app, flags, logging  # noqa: E402

from gan_jax import config as config_lib, errors, files, supervisor  # noqa: E402

FLAGS = flags.FLAGS

_FLAG_TYPES = {'str': flags.DEFINE_string, 'int': flags.DEFINE_integer,
               'float': flags.DEFINE_float, 'bool': flags.DEFINE_bool}
# A flag per Config field, from its setting (config.py): name, default, help.
for _field in config_lib.FIELDS:
  _FLAG_TYPES[_field.type.split(' |')[0]](_field.name, _field.metadata['flag_default'],
                                         _field.metadata['help'])
del _field
flags.DEFINE_string('mode', 'train', 'train; sample: write --num_samples images from '
                    'the latest checkpoint in --workdir; export: write them as a labelled '
                    'dataset (class folders, data.npz, labels.csv, manifest.json) into '
                    '--export_dir.')
flags.DEFINE_bool('interactive', False, 'Ask for the six lab parameters '
                  f'({", ".join(config_lib.PROMPTS)}) with prompts.')
flags.DEFINE_bool('distributed', False, 'Several processes (TPU pod slices, several GPU '
                  'hosts, or processes on one machine): start the same command in each. '
                  'Without the three flags below, jax.distributed.initialize() finds its '
                  'peers itself (Cloud TPU, SLURM, JAX_COORDINATOR_ADDRESS...).')
flags.DEFINE_string('coordinator_address', None, 'With --distributed: host:port of process 0, '
                    'the same in every process.')
flags.DEFINE_integer('num_processes', None, 'With --distributed: how many processes take part.')
flags.DEFINE_integer('process_id', None, 'With --distributed: this process, 0 .. '
                     'num_processes-1 (0 writes the outputs).')
flags.DEFINE_bool('traceback', False, 'On a failure, also print the Python traceback '
                  '(it always goes to WORKDIR/error.log when the workdir exists).')
flags.DEFINE_integer('distributed_timeout', 120, 'With --distributed: seconds to wait for '
                     'every process to join before giving up with an error.')
flags.DEFINE_integer('distributed_heartbeat', 30, 'With --distributed: seconds without a '
                     'sign of life after which a process counts as dead and the others '
                     'stop (exit 5), ready to resume with the same commands.')


def _default_dtype() -> str:
  import jax
  return 'float32' if jax.default_backend() == 'cpu' else 'bfloat16'


def _config_from_flags() -> config_lib.Config:
  values = {f.name: FLAGS[f.name].value for f in config_lib.FIELDS}
  # The platform default for --dtype is filled in after validation (it needs jax).
  return config_lib.Config(**{**values, 'dtype': FLAGS.dtype or 'float32'})


def _fail(message: str, code: int = 2, prefix: str = 'error') -> None:
  print(f'{prefix}: {message}', file=sys.stderr)
  sys.exit(code)


# What a shipped generator's run decided (with --pretrained these are refused):
# the settings a resume must match, but the seed (which picks the noise), and
# those of training alone.
_TRAINING_FLAGS = tuple(f for f in config_lib.RESUME_FIELDS if f != 'seed') + (
    'epochs', 'save_interval', 'keep_checkpoints', 'tensorboard', 'steps_per_chunk',
    'retrain_classifier', 'skip_bad_images', 'interactive', 'distributed')


def _check_pretrained_flags() -> None:
  """--pretrained draws from a shipped generator: not with --mode=train, a
  --workdir, or a setting of training."""
  name = FLAGS.pretrained
  if FLAGS.mode == 'train':
    _fail(f'--pretrained={name} is a setting of --mode=sample and --mode=export (the '
          'shipped generator is trained already); add --mode=sample or --mode=export, or '
          'drop --pretrained to train your own')
  if FLAGS['workdir'].present:
    _fail(f'--pretrained={name} and --workdir={FLAGS.workdir} both name the generator to '
          'draw from; give one of them')
  given = [f for f in _TRAINING_FLAGS if FLAGS[f].present]
  if given:
    _fail(f'--{given[0]} is a setting of training; the shipped generator {name} has its own '
          '(docs/pretrained.md): drop it, or train a run and draw from it with --workdir')


def _check_distributed_flags() -> None:
  given = [name for name in ('coordinator_address', 'num_processes', 'process_id')
           if FLAGS[name].value is not None]
  if given and not FLAGS.distributed:
    _fail(f'--{given[0]} needs --distributed')
  if given and len(given) < 3:
    _fail('--distributed: give all of --coordinator_address, --num_processes and '
          '--process_id, or none of them (to let jax.distributed.initialize() find them)')
  if given:
    if FLAGS.num_processes < 1:
      _fail(f'--num_processes: must be at least 1, got {FLAGS.num_processes}')
    if not 0 <= FLAGS.process_id < FLAGS.num_processes:
      _fail(f'--process_id: must be in [0, {FLAGS.num_processes}), got {FLAGS.process_id}')
    if ':' not in FLAGS.coordinator_address:
      _fail(f'--coordinator_address: must be host:port, got {FLAGS.coordinator_address!r}')
  if FLAGS.distributed_timeout < 1:
    _fail(f'--distributed_timeout: must be at least 1 second, got {FLAGS.distributed_timeout}')
  if FLAGS.distributed_heartbeat < 2:
    _fail('--distributed_heartbeat: must be at least 2 seconds, got '
          f'{FLAGS.distributed_heartbeat}')


def _start_distributed(jax) -> None:
  """jax.distributed.initialize, with one clear error instead of XLA's abort.

  When a peer never shows up, XLA aborts the process with a stack trace after
  its own deadline; a watchdog that fires first prints one line and exits 2.
  """
  timeout = FLAGS.distributed_timeout
  who = (f'process {FLAGS.process_id} of {FLAGS.num_processes}'
         if FLAGS.process_id is not None else 'this process')

  def give_up():
    where = FLAGS.coordinator_address or 'the address jax.distributed found'
    print(f'error: --distributed: {who} could not join the others at {where} within '
          f'{timeout} s; start every process with the same --coordinator_address and '
          '--num_processes (process 0 runs the coordinator), or raise '
          '--distributed_timeout', file=sys.stderr, flush=True)
    os._exit(2)  # XLA is blocked in C++: exit without waiting for it.

  watchdog = threading.Timer(timeout, give_up)
  watchdog.daemon = True
  watchdog.start()
  # CPU processes exchange their collectives through gloo (GPU/TPU ignore this).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(
      coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes,
      process_id=FLAGS.process_id, initialization_timeout=timeout + 60,
      heartbeat_timeout_seconds=FLAGS.distributed_heartbeat)
  watchdog.cancel()


_PEER_LOSS_SIGNS = ('Connection closed by peer', 'Connection reset by peer', 'Gloo ',
                    'heartbeat', 'UNAVAILABLE')


def _peer_lost(e: Exception) -> None:
  """A --distributed peer died (its collectives failed): one line (printed by
  the parent, `supervisor`), exit 5.

  os._exit: JAX's own shutdown at exit would wait on the dead peer and then
  abort with pages of XLA log.
  """
  import jax
  text = str(e)
  address = re.search(r'by peer \[?([^\]\s]+)\]?(:\d+)?', text)
  if jax.process_count() == 2:
    who = f'process {1 - jax.process_index()} of 2'
  else:
    who = f'the process at {address.group(1)}' if address else 'a process'
  cause = re.split(r': \[|; ', (text.splitlines() or [''])[0])[0][:100]
  _log_traceback(FLAGS.workdir)
  supervisor.report(f'error: --distributed: {who} stopped answering ({cause}); '
                    f'{_kept(FLAGS.workdir)}; run the same commands again to resume from it')
  os._exit(supervisor.PEER_LOST)


def main(argv: list[str]) -> None:
  logging.set_verbosity(logging.WARNING)  # Keep JAX's start-up chatter out of the way.
  # Epoch lines must show up at once in `| tee log`, nohup files and notebooks too.
  sys.stdout.reconfigure(line_buffering=True)
  if FLAGS.distributed and not supervisor.is_child():
    sys.exit(supervisor.run_child(FLAGS.num_processes, lambda: _kept(FLAGS.workdir),
                                  lambda text: _log_text(FLAGS.workdir, text)))
  if supervisor.is_child():  # Fatal dumps go to the child's log, not the terminal.
    faulthandler.enable(sys.__stderr__)
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}; every option is a --flag (see --help)')
  if FLAGS.mode not in config_lib.MODES:
    _fail(f'--mode: must be one of {", ".join(config_lib.MODES)}; got {FLAGS.mode!r}')
  if FLAGS.dtype is not None and FLAGS.dtype not in config_lib.DTYPES:
    _fail(f'--dtype: must be one of {", ".join(config_lib.DTYPES)}; got {FLAGS.dtype!r}')
  # An unset --epochs or --save_interval is decided by config.training_length
  # (so --epochs=3 just works); an explicit --save_interval larger than
  # --epochs is an error below.
  config = _config_from_flags()
  if FLAGS.interactive:
    from gan_jax import interactive
    try:
      config = config.replace(**interactive.ask_lab_parameters(config))
    except errors.GanJaxError as e:
      _fail(str(e), code=e.exit_code)
  try:
    config_lib.validate(config)  # Reads a --dataset folder whole (image_folder).
  except ValueError as e:
    _fail(str(e))
  except errors.GanJaxError as e:  # A folder that cannot be a dataset.
    _fail(str(e), code=e.exit_code)
  if FLAGS.label is not None and FLAGS.mode not in ('sample', 'export'):
    _fail(f'--label={FLAGS.label} picks the class of --mode=sample images; to train a GAN '
          'that takes a label, pass --conditional (then sample with --mode=sample --label=N)')
  for name in ('export_dir', 'min_confidence'):
    if FLAGS[name].present and FLAGS.mode != 'export':
      _fail(f'--{name} is a setting of --mode=export; add --mode=export or drop it')
  if FLAGS['noise_scale'].present and FLAGS.mode not in ('sample', 'export'):
    _fail('--noise_scale is a setting of --mode=sample and --mode=export (training draws '
          'its noise with 1); add one of them or drop it')
  if FLAGS['cas'].present and FLAGS.mode == 'sample':
    _fail('--cas is a setting of training and of --mode=export; drop it from --mode=sample')
  _check_distributed_flags()
  if FLAGS.pretrained is not None:
    _check_pretrained_flags()
  if FLAGS.data_dir and not os.path.isdir(FLAGS.data_dir):
    _fail(f'--data_dir={FLAGS.data_dir} does not exist or is not a folder; point it at the '
          'folder that holds the prepared TFDS datasets (e.g. ../shared/tfds)')

  import jax  # After validation: bad flags fail within a second.
  if FLAGS.distributed:  # Before anything that starts a jax backend.
    _start_distributed(jax)
  if FLAGS.dtype is None:
    config = config.replace(dtype=_default_dtype())

  _run_mode(config)


def _run_mode(config: config_lib.Config) -> None:
  """Runs --mode; every failure a user can act on ends as one line and an exit code."""
  from gan_jax import sampling, trainer
  std_logging.getLogger('absl').addFilter(_LibraryNoiseFilter())
  _quiet_closed_loop_noise(config.workdir)
  try:
    if FLAGS.mode == 'sample':
      sampling.sample_from_run(config)
    elif FLAGS.mode == 'export':
      from gan_jax import export
      export.export_from_run(config)
    else:
      trainer.train_and_evaluate(config)
  except errors.GanJaxError as e:
    if isinstance(e, errors.WriteError):
      _log_traceback(config.workdir)
    _fail(str(e), code=e.exit_code, prefix=e.prefix)
  except KeyboardInterrupt:
    if FLAGS.mode in ('sample', 'export'):  # Before its folder was reserved: nothing written.
      _fail(f'--mode={FLAGS.mode} interrupted before writing anything; run the same command '
            'again to start it over', code=130, prefix='stopped')
    _fail('interrupted; the last saved checkpoint is kept. Run the same command again '
          'to resume from it.', code=130, prefix='stopped')
  except Exception as e:  # A write that failed in a place no phase names, or a dead peer.
    if FLAGS.distributed and any(sign in str(e) for sign in _PEER_LOSS_SIGNS):
      _peer_lost(e)
    found = errors.write_error(e, f'--mode={FLAGS.mode} stopped', config.workdir,
                               _kept(config.workdir))
    if found is None:
      raise  # A bug: the traceback is the report.
    _log_traceback(config.workdir)
    _fail(str(found), code=found.exit_code)


def _kept(workdir: str) -> str:
  """`workdir.kept` of any command, imported only when needed (it brings in jax)."""
  from gan_jax import workdir as workdir_lib
  return workdir_lib.kept(workdir, training=False)


def _log_traceback(workdir: str) -> None:
  """Appends the current exception's traceback to WORKDIR/error.log when the
  workdir exists (and prints it too with --traceback); with --pretrained
  there is no workdir to write in."""
  text = traceback.format_exc()
  if FLAGS.traceback:
    print(text, file=sys.stderr, end='')
  if FLAGS.pretrained is None:
    _log_text(workdir, text)


def _log_text(workdir: str, text: str) -> None:
  path = os.path.join(os.path.abspath(workdir), 'error.log')
  if not os.path.isdir(os.path.dirname(path)):
    return
  with contextlib.suppress(OSError):  # The workdir may be what failed.
    files.record(workdir, path)
    with open(path, 'a') as f:
      f.write(f'--- {datetime.datetime.now().isoformat(timespec="seconds")} '
              f'{" ".join(sys.argv)}\n{text}')


def _quiet_closed_loop_noise(workdir: str) -> None:
  """After a failed checkpoint, Orbax's TensorStore callbacks find their event
  loop closed and report that traceback as unraisable, from their threads; it
  goes to WORKDIR/error.log instead (anything else is printed as before)."""
  def quiet(hook):
    def handle(exc_type, exc, tb, *rest):
      if isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed':
        _log_text(workdir, ''.join(traceback.format_exception(exc_type, exc, tb)))
      else:
        hook(exc_type, exc, tb, *rest)
    return handle
  sys.excepthook = quiet(sys.excepthook)
  for module, name in ((threading, 'excepthook'), (sys, 'unraisablehook')):
    hook = getattr(module, name)  # These take one argument with exc_type etc.
    setattr(module, name, lambda args, hook=hook: quiet(lambda *_: hook(args))(
        args.exc_type, args.exc_value, args.exc_traceback))


class _LibraryNoiseFilter(std_logging.Filter):
  """Drops Orbax's own logging of a failed save (a traceback per thread: the
  failure reaches the command line, which prints one line and logs it) and
  TFDS's advice to install OpenCV (PIL decodes these small PNGs well)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.ERROR and '/orbax/' in record.pathname:
      return False
    return not str(record.msg).startswith('OpenCV is not installed')


def run() -> None:
  """Starts the command line (run.py, the `gan-jax` command, `python -m gan_jax`)."""
  # --helpshort lists the main program's key flags; make ours theirs.
  if supervisor.is_child():
    supervisor.become_child()
  for flag in FLAGS.get_key_flags_for_module(__name__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main, flags_parser=_parse_flags)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, but a value of the wrong type or an unknown flag ends as
  one `error:` line and exit 2, like every other bad input (absl: exit 1)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _fail(f'{e}; see --helpshort')
