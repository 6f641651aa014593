"""Pack the FER2013 image folders into one xz file for tools/gpu_sweep.py (uint8 train_x,
train_y, val_x, val_y; classes in ferrite's Emotion order). Usage:
    python3 tools/pack_fer.py ../shared/data/fer2013 OUT.xz
"""

import lzma
import os
import sys

import numpy as np
from PIL import Image

NAMES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def main():
    root, out = sys.argv[1], sys.argv[2]
    parts = []
    for split in ["train", "val"]:
        xs, ys = [], []
        for i, name in enumerate(NAMES):
            d = os.path.join(root, split, name)
            for f in sorted(os.listdir(d)):
                im = np.asarray(Image.open(os.path.join(d, f)).convert("L"))
                if im.shape != (48, 48):
                    sys.exit(f"{d}/{f}: {im.shape}, expected 48x48")
                xs.append(im)
                ys.append(i)
        parts += [np.stack(xs).tobytes(), np.array(ys, np.uint8).tobytes()]
        print(split, len(ys))
    with open(out + ".tmp", "wb") as f:
        f.write(lzma.compress(b"".join(parts), preset=6))
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
