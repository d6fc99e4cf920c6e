"""Goldens for the ResNet import: torchvision's feature maps and logits on synthetic weights and inputs.

Run on a machine with Debian's python3-torch and python3-torchvision (CI does not need them):
    OMP_NUM_THREADS=1 /usr/bin/python3 scripts/torch/make-resnet-goldens.py
Writes test/fixtures/resnet-parity.json: for ResNet-18 and ResNet-50, the layer4 feature maps (NHWC) and the
classifier logits of torchvision's model in eval mode, with every weight and the input from synthetic.py,
which test/helpers/synthetic-weights.ts reproduces bit for bit. Only outputs are committed (~0.3 MB).
"""
import base64
import json
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
import synthetic  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
# Not square, and 80 px halves to odd sides (5 → 3 at layer4): padding mistakes show.
INPUT = (2, 3, 64, 80)


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def golden(arch: str) -> dict:
    model = getattr(torchvision.models, arch)()
    state = {k: torch.from_numpy(synthetic.values(k, tuple(v.shape)).astype(
        np.int64 if v.dtype == torch.int64 else np.float32)) for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.from_numpy(synthetic.input_batch(INPUT))
    with torch.no_grad():
        f = model.conv1(x)
        f = model.maxpool(model.relu(model.bn1(f)))
        stem = f
        f = model.layer4(model.layer3(model.layer2(model.layer1(f))))
        logits = model.fc(torch.flatten(model.avgpool(f), 1))
    return {
        "stem": {"shape": list(stem.permute(0, 2, 3, 1).shape), "data": b64(stem.permute(0, 2, 3, 1).numpy())},
        "features": {"shape": list(f.permute(0, 2, 3, 1).shape), "data": b64(f.permute(0, 2, 3, 1).numpy())},
        "logits": {"shape": list(logits.shape), "data": b64(logits.numpy())},
        "featureAbsMax": float(f.abs().max()),
    }


def main() -> None:
    torch.manual_seed(0)
    out = {
        "about": "torchvision %s (torch %s), eval mode, synthetic weights and input (scripts/torch/synthetic.py); "
        "tensors are base64 little-endian float32, NHWC" % (torchvision.__version__, torch.__version__),
        "input": {"shape": list(INPUT), "layout": "NCHW"},
        "models": {arch: golden(arch) for arch in ("resnet18", "resnet50")},
    }
    path = os.path.join(ROOT, "test", "fixtures", "resnet-parity.json")
    with open(path, "w") as fh:
        json.dump(out, fh)
    print(path, os.path.getsize(path), "bytes;",
          {a: m["featureAbsMax"] for a, m in out["models"].items()})


if __name__ == "__main__":
    main()
