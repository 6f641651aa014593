"""Recipe sweep for ferrite's compact CNN on a GPU (PyTorch), to choose the CPU training run.

A PyTorch mirror of `src/model/compact.rs` (Conv3x3-BN-ReLU stages, 2x2 max-pools, global
average pooling, dropout, Dense 7, centred crop) and of ferrite's recipe (`src/train/`: SGD
Nesterov or Adam, linear warm-up then per-step cosine to min-lr, label smoothing, mixup/cutmix;
`src/data/augment.rs`: flip, integer shift, rotation, zoom as one bilinear affine map with zero
padding, random erasing with uniform noise). Results transfer approximately, not exactly
(different kernels, random streams and BN details): it ranks recipes, the CPU run decides.

Data: `tools/pack_fer.py` writes the FER2013 folders as one xz file (uint8 train_x, train_y,
val_x, val_y). Run several configurations side by side as processes:

    python3 tools/gpu_sweep.py DATA.xz LOG NAME key=value ...

keys: arch(compact|res) blocks se width crop stem epochs lr opt(sgd|adam) wd ls shift rotate zoom erase mix(none|mixup|cutmix)
alpha dropout batch seed. One JSON line per epoch goes to LOG (appended).
"""

import json
import lzma
import math
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    raw = lzma.decompress(open(path, "rb").read())
    n_tr, n_va = 28709, 3589
    o = 0
    tx = np.frombuffer(raw, np.uint8, n_tr * 2304, o).reshape(n_tr, 48, 48); o += n_tr * 2304
    ty = np.frombuffer(raw, np.uint8, n_tr, o); o += n_tr
    vx = np.frombuffer(raw, np.uint8, n_va * 2304, o).reshape(n_va, 48, 48); o += n_va * 2304
    vy = np.frombuffer(raw, np.uint8, n_va, o); o += n_va
    assert o == len(raw)
    return tx, ty, vx, vy


class Compact(nn.Module):
    def __init__(self, width, crop, stem, dropout):
        super().__init__()
        self.crop = crop
        layers, c_in = [], 1
        for s, c in enumerate([width, 2 * width, 4 * width, 8 * width]):
            for _ in range(stem if s == 0 else 2):
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                c_in = c
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(8 * width, 7)

    def forward(self, x):
        if self.crop and self.crop < x.shape[-1]:
            t = (x.shape[-1] - self.crop) // 2
            x = x[..., t:t + self.crop, t:t + self.crop]
        x = self.features(x).mean(dim=(2, 3))
        return self.head(self.drop(x))


class Residual(nn.Module):
    """Conv-BN-ReLU-Conv-BN plus the input, ReLU (a ResNet basic block, same channels)."""

    def __init__(self, c, se):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.se = nn.Sequential(nn.Linear(c, max(c // 8, 4)), nn.ReLU(inplace=True), nn.Linear(max(c // 8, 4), c),
                                nn.Sigmoid()) if se else None

    def forward(self, x):
        y = self.body(x)
        if self.se is not None:
            y = y * self.se(y.mean(dim=(2, 3)))[:, :, None, None]
        return F.relu(x + y)


class Res(nn.Module):
    """Untried on the CPU: stem Conv-BN-ReLU at the crop size, then per stage a 2x2 max-pool,
    Conv(3x3)-BN-ReLU to 2x channels and `blocks` residual blocks (optionally squeeze-excited);
    global average pooling, dropout, Dense 7."""

    def __init__(self, width, crop, blocks, se, dropout):
        super().__init__()
        self.crop = crop
        layers = [nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c = width
        for _ in range(3):
            layers += [nn.MaxPool2d(2), nn.Conv2d(c, 2 * c, 3, padding=1, bias=False), nn.BatchNorm2d(2 * c),
                       nn.ReLU(inplace=True)]
            c *= 2
            layers += [Residual(c, se) for _ in range(blocks)]
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c, 7)

    forward = Compact.forward


def augment(x, cfg, g):
    """x: (N,1,48,48) float in [0,1] -> augmented copy (ferrite's augment_into, batched)."""
    n, dev = x.shape[0], x.device
    flip = (torch.rand(n, device=dev, generator=g.g) < 0.5).float() * 2 - 1  # -1: flipped
    s = cfg["shift"]
    dx = torch.randint(-s, s + 1, (n,), device=dev, generator=g.g).float() if s else torch.zeros(n, device=dev)
    dy = torch.randint(-s, s + 1, (n,), device=dev, generator=g.g).float() if s else torch.zeros(n, device=dev)
    ang = (torch.rand(n, device=dev, generator=g.g) * 2 - 1) * math.radians(cfg["rotate"])
    zoom = 1 + (torch.rand(n, device=dev, generator=g.g) * 2 - 1) * cfg["zoom"]
    # output (normalised coords u) -> source: undo shift, zoom, rotation, then flip.
    half = 47 / 2
    cos, sin = torch.cos(ang), torch.sin(ang)
    tx, ty = -dx / half, -dy / half
    # ux = (u - t)/zoom ; sx = cos*ux + sin*uy ; sy = -sin*ux + cos*uy ; sx *= flip
    a11, a12 = cos / zoom, sin / zoom
    a21, a22 = -sin / zoom, cos / zoom
    theta = torch.stack([
        torch.stack([flip * a11, flip * a12, flip * (a11 * tx + a12 * ty)], 1),
        torch.stack([a21, a22, a21 * tx + a22 * ty], 1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    if cfg["erase"] > 0:
        r = g.np
        chosen = r.random(n) < cfg["erase"]
        area = r.uniform(0.02, 0.2, n) * 2304
        asp = r.uniform(0.3, 3.3, n)
        h = np.clip(np.round(np.sqrt(area * asp)), 1, 48)
        w = np.clip(np.round(np.sqrt(area / asp)), 1, 48)
        y0 = np.floor(r.random(n) * (49 - h))
        x0 = np.floor(r.random(n) * (49 - w))
        p = torch.tensor(np.stack([y0, y0 + h, x0, x0 + w, chosen]), device=dev, dtype=torch.float32)
        yy = torch.arange(48, device=dev, dtype=torch.float32).view(1, 48, 1)
        xx = torch.arange(48, device=dev, dtype=torch.float32).view(1, 1, 48)
        m = ((yy >= p[0].view(-1, 1, 1)) & (yy < p[1].view(-1, 1, 1)) & (xx >= p[2].view(-1, 1, 1))
             & (xx < p[3].view(-1, 1, 1)) & (p[4].view(-1, 1, 1) > 0)).unsqueeze(1)
        out = torch.where(m, torch.rand(out.shape, device=dev, generator=g.g), out)
    return out


def main():
    data, log, name = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = dict(arch="compact", blocks=1, se=0, width=28, crop=40, stem=1, epochs=53, lr=0.05, opt="sgd", wd=5e-4, ls=0.1, shift=4,
               rotate=10.0, zoom=0.1, erase=0.2, mix="none", alpha=0.2, dropout=0.2, batch=64,
               seed=42, limit=0, warmup=1.0, min_lr=1e-5, deadline=1e9)
    for kv in sys.argv[4:]:
        k, v = kv.split("=")
        cfg[k] = type(cfg[k])(v) if not isinstance(cfg[k], str) else v
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(cfg["seed"])
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    tx, ty, vx, vy = load(data)
    if cfg["limit"]:
        tx, ty = tx[:cfg["limit"]], ty[:cfg["limit"]]
    tx = torch.tensor(tx, device=dev).unsqueeze(1)
    ty = torch.tensor(ty, device=dev).long()
    vx = torch.tensor(vx, device=dev).unsqueeze(1).float() / 255
    vy = torch.tensor(vy, device=dev).long()
    g = types.SimpleNamespace(g=torch.Generator(device=dev).manual_seed(cfg["seed"]),
                              np=np.random.default_rng(cfg["seed"]))
    if cfg["arch"] == "compact":
        model = Compact(cfg["width"], cfg["crop"], cfg["stem"], cfg["dropout"])
    else:
        model = Res(cfg["width"], cfg["crop"], cfg["blocks"], cfg["se"], cfg["dropout"])
    model = model.to(dev).to(memory_format=torch.channels_last)
    if cfg["opt"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=cfg["wd"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
    n = tx.shape[0]
    b = cfg["batch"]
    spe = math.ceil(n / b)
    E, W = cfg["epochs"], cfg["warmup"]
    t0 = time.time()
    best = 0.0
    step = 0
    for ep in range(E):
        model.train()
        perm = torch.randperm(n, device=dev, generator=g.g)
        correct = 0
        for k in range(spe):
            t = step / spe
            if t < W:
                lr = cfg["lr"] * (t + 1 / spe) / W
            else:
                p = min(max((t - W) / max(E - W, 1e-9), 0), 1)
                lr = cfg["min_lr"] + 0.5 * (cfg["lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * p))
            for pg in opt.param_groups:
                pg["lr"] = lr
            idx = perm[k * b:(k + 1) * b]
            x = augment(tx[idx].float() / 255, cfg, g).contiguous(memory_format=torch.channels_last)
            y = ty[idx]
            if cfg["mix"] != "none":
                lam = float(g.np.beta(cfg["alpha"], cfg["alpha"]))
                j = torch.randperm(x.shape[0], device=dev, generator=g.g)
                if cfg["mix"] == "mixup":
                    x = lam * x + (1 - lam) * x[j]
                else:
                    side = math.sqrt(1 - lam)
                    h = int(48 * side)
                    cy, cx = g.np.integers(0, 48), g.np.integers(0, 48)
                    y0, y1 = max(cy - h // 2, 0), min(cy + h // 2, 48)
                    x0, x1 = max(cx - h // 2, 0), min(cx + h // 2, 48)
                    x = x.clone()
                    x[:, :, y0:y1, x0:x1] = x[j][:, :, y0:y1, x0:x1]
                    lam = 1 - (y1 - y0) * (x1 - x0) / 2304
                out = model(x)
                loss = lam * F.cross_entropy(out, y, label_smoothing=cfg["ls"]) + (1 - lam) * F.cross_entropy(out, y[j], label_smoothing=cfg["ls"])
            else:
                out = model(x)
                loss = F.cross_entropy(out, y, label_smoothing=cfg["ls"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (out.argmax(1) == y).sum()
            step += 1
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(vx[i:i + 512].contiguous(memory_format=torch.channels_last)) for i in range(0, vx.shape[0], 512)])
            acc = (logits.argmax(1) == vy).float().mean().item()
            flipped = torch.cat([model(vx[i:i + 512].flip(-1).contiguous(memory_format=torch.channels_last)) for i in range(0, vx.shape[0], 512)])
            acc_flip = ((logits.softmax(1) + flipped.softmax(1)).argmax(1) == vy).float().mean().item()
        best = max(best, acc)
        rec = dict(name=name, epoch=ep + 1, of=E, lr=lr, train_acc=round(correct.item() / n, 4), val=round(acc, 4),
                   val_flip=round(acc_flip, 4), best=round(best, 4), s=round(time.time() - t0, 1))
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
        if time.time() - t0 > cfg["deadline"]:
            break
    with open(log, "a") as f:
        f.write(json.dumps(dict(name=name, done=True, cfg=cfg, best=best, s=round(time.time() - t0, 1))) + "\n")


if __name__ == "__main__":
    main()
