"""PyTorch twin of this project's ProtoPool model and training step, timed on the CPU for the benchmarks.

Run with Debian's python3-torch and python3-torchvision (CI does not need them), from the repository root:
    OMP_NUM_THREADS=1 /usr/bin/python3 scripts/torch/bench-protopool.py --case resnet18-64 --mode train \\
        --threads 1 --batch 50 --steps 3
Cases (10 classes): resnet18-64 (torchvision resnet18 trunk to layer4, 64×64×3 → 2×2×512, M 40 K 3 D 64) and
small-cnn-28 (backbones.ts `smallCnn`, 28×28×1 → 7×7×128, M 40 K 3 D 32). Random init, synthetic seeded inputs.
--mode train runs steps + 1 warm-up steps, then steps + 1 joint steps (forward, backward, Adam), drops the first
of each phase and reports the median as images/s; --mode inference times the eval-mode forward instead.
Prints one line, `RESULT {json}`, on stdout (images/s, peak RSS in MB); anything else goes to stderr.

Mirrors gpu-backend/src/model/{backbones,protopool,head,similarity,assignment,losses}.ts and trainer.ts's
`trainStep` under the default config (config.ts): same layers, shapes and loss terms, not the same numbers.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

CLASSES = 10
CASES = {
    "resnet18-64": {"backbone": "resnet18", "input": (3, 64, 64), "m": 40, "k": 3, "d": 64},
    "small-cnn-28": {"backbone": "small-cnn", "input": (1, 28, 28), "m": 40, "k": 3, "d": 32},
}
# config.ts / head.ts / assignment.ts defaults.
TAU = 0.5
EPS = 1e-4
GUMBEL_TIME = 6
GUMBEL_MAX = 1000.0
INFERENCE_SCALE = 1e4
LOSS = {"clst": 0.8, "sep": -0.08, "l1": 1e-4, "ortho": 1.0}
LR = {"backbone": 1e-3, "addOn": 3e-3, "prototypes": 3e-3, "slotLogits": 3e-3, "lastLayer": 1e-4}
WEIGHT_DECAY = {"backbone": 1e-3, "addOn": 1e-3}
# Steps in one default epoch (epochSize 10,000) at this batch: the Gumbel scale anneals within an epoch.
EPOCH_IMAGES = 10_000


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def conv_bn(cin: int, cout: int) -> list:
    # backbones.ts `convBn` at stride 1: 3×3 'same' (= padding 1), no bias, batch norm (PyTorch's defaults), ReLU.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def small_cnn(channels: int) -> nn.Module:
    # The plain stack `smallCnn` builds below SMALL_CNN_STEM_FROM (48 px): 28 px → 7×7×128.
    return nn.Sequential(
        *conv_bn(channels, 32), *conv_bn(32, 32), nn.MaxPool2d(2),
        *conv_bn(32, 64), *conv_bn(64, 64), nn.MaxPool2d(2),
        *conv_bn(64, 128),
    )


def resnet18_trunk() -> nn.Module:
    # backbones.ts lays its ResNet out as torchvision's (symmetric padding); no avgpool, no fc.
    r = torchvision.models.resnet18()
    return nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)


class ProtoPool(nn.Module):
    """protopool.ts + head.ts: backbone → 1×1 conv + sigmoid (z in [0,1]^D) → distances → focal → logits."""

    def __init__(self, backbone: nn.Module, channels: int, c: int, m: int, k: int, d: int):
        super().__init__()
        self.c, self.m, self.k, self.d = c, m, k, d
        self.backbone = backbone
        self.add_on = nn.Conv2d(channels, d, 1)  # TF.js conv2d keeps its bias by default
        nn.init.kaiming_normal_(self.add_on.weight)
        nn.init.zeros_(self.add_on.bias)
        self.prototypes = nn.Parameter(torch.rand(m, d))
        self.slot_logits = nn.Parameter(nn.init.xavier_normal_(torch.empty(c, m, k)))
        identity = torch.zeros(c, c * k)
        for j in range(c * k):
            identity[j // k, j] = 1.0
        self.register_buffer("identity", identity)
        self.last_layer = nn.Parameter(identity.clone())

    def assignment(self, scale: float, noise):
        # assignment.ts `gumbelAssignment`: q[c,:,k] = softmax_m((s·L + g) / τ).
        scaled = self.slot_logits * scale
        if noise is not None:
            scaled = scaled + noise
        return F.softmax(scaled / TAU, dim=1)

    def forward(self, x, scale: float, noise=None):
        z = torch.sigmoid(self.add_on(self.backbone(x)))  # [B,D,H,W]
        b = z.shape[0]
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.d)  # [B·H·W, D], as the TF.js NHWC reshape
        # similarity.ts `squaredDistances`: max(0, ‖z‖² − 2 z·p + ‖p‖²).
        zz = flat.square().sum(1, keepdim=True)
        pp = self.prototypes.square().sum(1).reshape(1, -1)
        dist = F.relu(zz - 2 * flat @ self.prototypes.t() + pp).reshape(b, -1, self.m)  # [B,HW,M]
        dmin, dmean = dist.min(1).values, dist.mean(1)
        q = self.assignment(scale, noise)
        # 'reference' focal: sim(Σ_m q·dmin) − sim(Σ_m q·dmean), one column per class slot.
        q_flat = q.permute(1, 0, 2).reshape(self.m, self.c * self.k)
        focal = similarity(dmin @ q_flat) - similarity(dmean @ q_flat)
        logits = focal @ self.last_layer.t()
        return {"logits": logits, "focal": focal, "min": dmin, "q": q}


def similarity(d):
    return torch.log((d + 1) / (d + EPS))


def masked_min_distance(dmin, score, top_k: int, max_dist: float):
    # losses.ts `maskedMinDistance`: the score only picks the mask (top-k indices carry no gradient).
    idx = score.topk(top_k, dim=1).indices
    mask = torch.zeros_like(dmin).scatter_(1, idx, 1.0)
    return (max_dist - ((max_dist - dmin) * mask).max(1).values).mean()


def orthogonality(slot_logits):
    c, _, k = slot_logits.shape
    unit = slot_logits / slot_logits.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return (unit.transpose(1, 2) @ unit).sum() / (c * k) - 1


def step_loss(model: ProtoPool, out: dict, y):
    """trainer.ts `trainStep` in the warm-up and joint phases: CE + l1 + clst + sep + ortho (align 0)."""
    ce = F.cross_entropy(out["logits"], y)
    l1 = (model.last_layer * (1 - model.identity)).abs().sum()
    own = out["q"][y]  # [B,M,K]: each image's own class's assignment
    clst = masked_min_distance(out["min"], own.sum(2), model.k, float(model.d))
    sep = masked_min_distance(out["min"], (1 - own).sum(2), model.m - model.k, float(model.d))
    ortho = orthogonality(model.slot_logits)
    return ce + LOSS["l1"] * l1 + LOSS["clst"] * clst + LOSS["sep"] * sep + LOSS["ortho"] * ortho


def gumbel_scale(epoch: float) -> float:
    if epoch >= GUMBEL_TIME:
        return GUMBEL_MAX
    return GUMBEL_MAX * math.sqrt(max(epoch, 0.0) / GUMBEL_TIME)


def gumbel_noise(shape):
    u = torch.empty(shape).uniform_(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def build(case: dict) -> ProtoPool:
    if case["backbone"] == "resnet18":
        backbone, channels = resnet18_trunk(), 512
    else:
        backbone, channels = small_cnn(case["input"][0]), 128
    return ProtoPool(backbone, channels, CLASSES, case["m"], case["k"], case["d"])


def make_optimizer(model: ProtoPool) -> torch.optim.Adam:
    # optimizer.ts `GroupedAdam`: one Adam per group, L2 decay added to the gradient (as torch's Adam does);
    # tfjs's Adam epsilon is the backend's 1e-7. The last layer is a group of its own that only the
    # last-layer phase trains, so in warm-up and joint it stays frozen (requires_grad False below).
    return torch.optim.Adam([
        {"params": list(model.backbone.parameters()), "lr": LR["backbone"], "weight_decay": WEIGHT_DECAY["backbone"]},
        {"params": list(model.add_on.parameters()), "lr": LR["addOn"], "weight_decay": WEIGHT_DECAY["addOn"]},
        {"params": [model.prototypes], "lr": LR["prototypes"]},
        {"params": [model.slot_logits], "lr": LR["slotLogits"]},
    ], eps=1e-7)


def set_phase(model: ProtoPool, phase: str):
    # trainer.ts GROUPS_BY_PHASE: warm-up trains add-on, prototypes and slot logits; joint adds the backbone.
    # Both run the network with training=true, so batch norm uses batch statistics (and updates its averages)
    # in warm-up too, though its weights stay frozen: model.train() in both phases.
    model.train()
    for p in model.backbone.parameters():
        p.requires_grad_(phase == "joint")
    model.last_layer.requires_grad_(False)


def time_train(model, opt, x, y, steps: int, phase: str, epoch: int) -> list:
    set_phase(model, phase)
    steps_per_epoch = math.ceil(EPOCH_IMAGES / x.shape[0])
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        # One Gumbel draw per step, as trainStep does. No mixup (off by default) and no augmentation
        # (off by default, and done outside the step by the data reader when on).
        noise = gumbel_noise((model.c, model.m, model.k))
        out = model(x, gumbel_scale(epoch + step / steps_per_epoch), noise)
        loss = step_loss(model, out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # trainStep reads the loss and the correct count back every step.
        correct = (out["logits"].argmax(1) == y).sum()
        loss_value, _ = loss.item(), correct.item()
        times.append(time.perf_counter() - t0)
        if not math.isfinite(loss_value):
            raise RuntimeError(f"{phase} step {step}: loss {loss_value}")
        log(f"{phase} step {step}: {times[-1] * 1000:.0f} ms, loss {loss_value:.4f}")
    return times[1:]


def time_inference(model, x, steps: int) -> list:
    # bench/inference.ts: model.forward(x, {kind: 'inference'}, false): no noise, scale 1e4, running averages.
    model.eval()
    times = []
    with torch.no_grad():
        for step in range(steps + 1):
            t0 = time.perf_counter()
            out = model(x, INFERENCE_SCALE)
            out["logits"].sum().item()
            times.append(time.perf_counter() - t0)
            log(f"inference run {step}: {times[-1] * 1000:.0f} ms")
    return times[1:]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    p.add_argument("--mode", choices=["train", "inference"], required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.steps < 1:
        p.error("--steps must be at least 1")

    # OMP_NUM_THREADS sizes the OpenMP pool at start-up; set_num_threads alone can leave idle spinning threads.
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp != str(a.threads):
        log(f"warning: OMP_NUM_THREADS={omp} but --threads {a.threads}; set both alike")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    case = CASES[a.case]
    model = build(case)
    x = torch.randn(a.batch, *case["input"])
    y = torch.randint(0, CLASSES, (a.batch,))
    result = {"case": a.case, "mode": a.mode, "threads": torch.get_num_threads(), "batch": a.batch}

    def median_rate(times):
        return round(a.batch / statistics.median(times), 1)

    if a.mode == "train":
        opt = make_optimizer(model)
        result["warmup_img_s"] = median_rate(time_train(model, opt, x, y, a.steps, "warmup", 0))
        result["joint_img_s"] = median_rate(time_train(model, opt, x, y, a.steps, "joint", 1))
    else:
        result["inference_img_s"] = median_rate(time_inference(model, x, a.steps))
    # ru_maxrss is in KB on Linux.
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["torch"] = torch.__version__
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
