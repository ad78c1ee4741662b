"""Writes labelled images of a built-in dataset as a folder of PNGs, the layout
`--dataset=PATH` reads: the worked example of docs/own-images.md.

  TFDS_DATA_DIR=../shared/tfds python experiments/folder_from_tfds.py \\
      --dataset=fashion --per_class=200 --out=fashion_2000

OUT/<class name>/NNNNN.png, `per_class` training images of each class (the
first ones in file order; NNNNN is the image's index in the split), class
names with '/' written as '_'. No test folder: gan_jax holds 10% out.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--dataset', default='fashion', help='a built-in dataset')
  parser.add_argument('--per_class', type=int, default=200, help='images of each class')
  parser.add_argument('--out', required=True, help='the folder to write (must not exist)')
  args = parser.parse_args()
  import numpy as np
  from PIL import Image
  from gan_jax import datasets, input_pipeline
  if os.path.exists(args.out):
    sys.exit(f'error: {args.out} exists; choose a new folder')
  split = input_pipeline.load_split(args.dataset, 'train', os.environ.get('TFDS_DATA_DIR'))
  names = [n.replace('/', '_') for n in datasets.get(args.dataset).class_names]
  pixels = np.round((split.images[..., 0] + 1) * 127.5).astype(np.uint8)
  for c, name in enumerate(names):
    os.makedirs(os.path.join(args.out, name))
    for i in np.flatnonzero(split.labels == c)[:args.per_class]:
      Image.fromarray(pixels[i], 'L').save(os.path.join(args.out, name, f'{i:05d}.png'))
  print(f'{args.out}: {len(names)} classes of {args.per_class} images')


if __name__ == '__main__':
  main()
