"""Plots final FD and IS against wall time for the runs of a quality sweep.

Reads a JSON list of runs, each {"name", "dataset", "epochs", "seed",
"command", "shared", "workdir"} whose workdir holds that run's report.json
(FD, IS, classes, wall time are read from it; a run without a workdir gives
"fd", "IS", "classes", "wall", "real_is" itself), prints a Markdown table and
writes a two-panel scatter plot (FD, lower is better; IS, with the real
data's IS as a line), one colour per dataset, a marker per epoch count,
hollow where the run shared the machine with other work ("shared": its wall
time is longer than the run alone would take).

  python experiments/quality_frontier.py runs.json docs/images/quality_frontier.png
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top


def load(runs_path: str) -> list[dict]:
  with open(runs_path) as f:
    runs = json.load(f)
  for run in runs:
    if 'workdir' not in run:  # Figures copied from a run whose folder is gone.
      continue
    with open(os.path.join(run['workdir'], 'report.json')) as f:
      report = json.load(f)
    run.update(fd=report['final']['fd'], IS=report['final']['is'],
               classes=report['final']['classes_covered'],
               agreement=report['final'].get('label_agreement'),
               wall=report['wall_seconds'], real_is=report['reference']['is'])
  return runs


def table(runs: list[dict]) -> str:
  lines = ['| run | dataset | epochs | seed | wall | FD | IS (real) | classes | command |',
           '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  # A shared machine's wall time is marked with *.
  for r in runs:
    m, s = divmod(round(r['wall']), 60)
    lines.append(f'| {r["name"]} | {r["dataset"]} | {r["epochs"]} | {r["seed"]} | '
                 f'{m}m{s:02d}s{"*" if r.get("shared") else ""} | {r["fd"]:.2f} | {r["IS"]:.2f} ({r["real_is"]:.2f}) | '
                 f'{r["classes"]}/10 | `{r["command"]}` |')
  return '\n'.join(lines)


def plot(runs: list[dict], path: str) -> None:
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  colors = {'mnist': 'tab:blue', 'fashion': 'tab:orange'}
  markers = {10: 'o', 30: 's'}
  for ax, key, title in ((axes[0], 'fd', 'Final FD (lower is better)'),
                         (axes[1], 'IS', 'Final IS (higher is better)')):
    for r in runs:
      color = colors.get(r['dataset'], 'gray')
      ax.scatter(r['wall'] / 60, r[key], marker=markers.get(r['epochs'], 'x'), s=36,
                 facecolors='none' if r.get('shared') else color, edgecolors=color)
      ax.annotate(r['name'], (r['wall'] / 60, r[key]), fontsize=6,
                  xytext=(3, 3), textcoords='offset points')
    if key == 'IS':
      for dataset, color in colors.items():
        real = [r['real_is'] for r in runs if r['dataset'] == dataset]
        if real:
          ax.axhline(real[0], color=color, ls='--', lw=1, label=f'{dataset}: real data')
          ax.axhline(0.95 * real[0], color=color, ls=':', lw=1, label=f'{dataset}: 95% of real')
      ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('wall time of the run (min, 2 CPU cores)')
    ax.grid(alpha=0.3)
  axes[0].set_yscale('log')
  fig.suptitle('Quality sweep: circles 10 epochs, squares 30; blue MNIST, orange '
               'Fashion-MNIST; hollow: the machine was shared (wall time inflated)',
               fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('runs', help='the JSON list of runs')
  parser.add_argument('plot', help='the PNG to write')
  args = parser.parse_args()
  runs = load(args.runs)
  print(table(runs))
  plot(runs, args.plot)
