"""Pretrains a torchvision ResNet-18 from random init on one generated "parts" dataset, for a transfer experiment.

The checkpoint is meant to be imported into the TF.js model (gpu-backend/src/weights/import-resnet.ts) and
ProtoPool then trained on a *different* generated parts dataset (e.g. the default seed 0), to see whether a
backbone pretrained on other classes and markers helps. Inputs follow the importer's convention for
torchvision checkpoints: whole image (no box crop), RGB in [0, 1], normalised with the ImageNet mean and std.
No flips: the parts sit at semantic positions (top/right/bottom/left) and a flip would swap them.

Needs Debian's python3-torch, python3-torchvision and python3-pil (run with /usr/bin/python3; CI does not).
Rerun, from the repository root:
    npx tsx -e "import('./gpu-backend/src/data/parts.ts').then(async m => console.log(await m.ensurePartsDataset({...m.DEFAULT_PARTS, seed: 7})))"
    OMP_NUM_THREADS=1 /usr/bin/python3 scripts/torch/pretrain-resnet.py \\
        --data /tmp/protopool-parts-v2-s7-64px-15c-200+50/CUB_200_2011 --out /tmp/transfer/resnet18-parts7.pth
(the first command writes the seed-7 dataset, 15 classes × 200 train + 50 test at 64 px, and prints its
directory). Trains until the test accuracy reaches --target (0.9), --epochs run out, or the next epoch would
pass --max-seconds. Writes model.state_dict() with torch.save (zip format) to --out and a JSON summary beside
it (same name, .json).
"""
import argparse
import hashlib
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def read_table(path: str) -> dict:
    """A CUB `<id> <value…>` file as {id: value string}."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                k, v = line.strip().split(" ", 1)
                out[int(k)] = v
    return out


def load_cub(root: str, size: int):
    """(train, test) as (uint8 images [N,3,size,size], int64 labels 0-based) and the class names."""
    images = read_table(os.path.join(root, "images.txt"))
    labels = read_table(os.path.join(root, "image_class_labels.txt"))
    split = read_table(os.path.join(root, "train_test_split.txt"))
    classes = [v for _, v in sorted(read_table(os.path.join(root, "classes.txt")).items())]
    parts = {1: ([], []), 0: ([], [])}
    for i in sorted(images):
        im = Image.open(os.path.join(root, "images", images[i])).convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        xs, ys = parts[int(split[i])]
        xs.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
        ys.append(int(labels[i]) - 1)

    def stack(xs, ys):
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64)

    return stack(*parts[1]), stack(*parts[0]), classes


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,H,W] → float, [0,1], ImageNet mean/std."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def evaluate(model, x, y, batch: int) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(y), batch):
            correct += (model(normalise(x[s:s + batch])).argmax(1) == y[s:s + batch]).sum().item()
    return correct / len(y)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the generated CUB-layout directory (…/CUB_200_2011)")
    p.add_argument("--out", default="/tmp/transfer/resnet18-parts7.pth")
    p.add_argument("--epochs", type=int, default=30, help="at most this many epochs")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed: init and batch order")
    p.add_argument("--target", type=float, default=0.9, help="stop once the test accuracy reaches this")
    p.add_argument("--max-seconds", type=float, default=1200, help="wall-time cap (loading included)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    a = p.parse_args()

    t0 = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    (xtr, ytr), (xte, yte), classes = load_cub(a.data, a.size)
    print(f"data {a.data}: {len(ytr)} train, {len(yte)} test, {len(classes)} classes, "
          f"{a.size} px; loaded in {time.time() - t0:.1f} s; torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, {torch.get_num_threads()} thread(s)", flush=True)

    model = torchvision.models.resnet18(num_classes=len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    order = torch.Generator().manual_seed(a.seed)
    history = []
    for epoch in range(1, a.epochs + 1):
        if history and time.time() - t0 + history[-1]["seconds"] > a.max_seconds:
            print(f"stopping: another epoch would pass {a.max_seconds:.0f} s", flush=True)
            break
        te = time.time()
        model.train()
        perm = torch.randperm(len(ytr), generator=order)
        loss_sum, correct = 0.0, 0
        for s in range(0, len(perm), a.batch):
            idx = perm[s:s + a.batch]
            y = ytr[idx]
            out = model(normalise(xtr[idx]))
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
        train_s = time.time() - te
        test_acc = evaluate(model, xte, yte, 256)
        h = {
            "epoch": epoch,
            "trainLoss": loss_sum / len(ytr),
            "trainAccuracy": correct / len(ytr),
            "testAccuracy": test_acc,
            "imagesPerSecond": len(ytr) / train_s,
            "seconds": time.time() - te,
        }
        history.append(h)
        print(f"epoch {epoch:2d}  train loss {h['trainLoss']:.4f}  train acc {h['trainAccuracy']:.4f}  "
              f"test acc {test_acc:.4f}  {h['imagesPerSecond']:.0f} img/s  {h['seconds']:.1f} s", flush=True)
        if test_acc >= a.target:
            print(f"reached {a.target:.0%} test accuracy", flush=True)
            break

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.save(model.state_dict(), a.out)
    wall = time.time() - t0
    with open(a.out, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    gen = os.path.join(a.data, "generator.json")
    summary = {
        "checkpoint": os.path.abspath(a.out),
        "sha256": sha,
        "arch": "resnet18",
        "dataset": os.path.abspath(a.data),
        "generator": json.load(open(gen)) if os.path.exists(gen) else None,
        "seed": a.seed,
        "classes": len(classes),
        "classNames": classes,
        "trainImages": len(ytr),
        "testImages": len(yte),
        "input": {"size": a.size, "crop": "none (whole image)", "range": "[0,1]", "mean": MEAN, "std": STD},
        "optimizer": {"name": "Adam", "lr": a.lr, "batch": a.batch, "augmentation": "none"},
        "epochs": len(history),
        "target": a.target,
        "reachedTarget": bool(history) and history[-1]["testAccuracy"] >= a.target,
        "finalTestAccuracy": history[-1]["testAccuracy"] if history else None,
        "wallSeconds": wall,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "history": history,
    }
    json_path = os.path.splitext(a.out)[0] + ".json"
    with open(json_path, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e6:.1f} MB, sha256 {sha[:16]}…) and {json_path}; "
          f"{wall:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
