"""Reference CNN of the FER2013 tutorials in PyTorch: training and inference speed.

Prints one JSON line: {"framework": "pytorch", "train_img_s": ..., "infer64_img_s": ..., "infer1_ms": ...}.
"""
import json, os, sys, time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))


def block(cin, cout, k):
    return [nn.Conv2d(cin, cout, k, padding="same"), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25)]


def dense(din, dout):
    return [nn.Linear(din, dout), nn.BatchNorm1d(dout), nn.ReLU(), nn.Dropout(0.25)]


model = nn.Sequential(*block(1, 64, 3), *block(64, 128, 5), *block(128, 512, 3), *block(512, 512, 3), nn.Flatten(),
                      *dense(4608, 256), *dense(256, 512), nn.Linear(512, 7))
params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for n, b in model.named_buffers() if "running" in n)
assert params == 4_478_727, params
opt = torch.optim.Adam(model.parameters(), 5e-4)
loss_fn = nn.CrossEntropyLoss()

steps, warm = int(sys.argv[1]) if len(sys.argv) > 1 else 30, 5
g = torch.Generator().manual_seed(0)
x = torch.rand(64, 1, 48, 48, generator=g)
y = torch.randint(0, 7, (64,), generator=g)


def step():
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


model.train()
for _ in range(warm):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
train = steps * 64 / (time.perf_counter() - t)

model.eval()
with torch.inference_mode():
    for _ in range(warm):
        model(x)
    t = time.perf_counter()
    for _ in range(steps):
        model(x)
    infer64 = steps * 64 / (time.perf_counter() - t)
    x1 = x[:1]
    times = []
    for _ in range(steps * 5):
        t = time.perf_counter()
        model(x1)
        times.append(time.perf_counter() - t)
print(json.dumps({"framework": f"pytorch {torch.__version__}", "train_img_s": train, "infer64_img_s": infer64,
                  "infer1_ms": 1000 * float(np.median(times))}))
