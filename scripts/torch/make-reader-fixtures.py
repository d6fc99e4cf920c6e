"""Writes the checkpoint-reader fixtures into test/fixtures/checkpoints/ (run with Debian's python3-torch).

    /usr/bin/python3 scripts/torch/make-reader-fixtures.py

One small state dict, saved the ways checkpoints reach us (torch zip, legacy torch, safetensors, wrapped,
DataParallel-prefixed), plus malformed files, and expected.json: every tensor's key, dtype, shape and
values as PyTorch reports them after `.float()`, so test/backend/checkpoint-reader.test.ts compares the
reader against PyTorch, not against itself. Values are arange-based, so expected.json is the same on every
run; the files' bytes are not quite (zip timestamps, and legacy storage keys are memory addresses).

Nothing here ever loads the malicious fixture: it is written, never read back.
"""
import json
import os
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "checkpoints"

DTYPE_NAME = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
SAFETENSORS_DTYPE = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def state_dict() -> "OrderedDict[str, torch.Tensor]":
    """A real module's state dict (so the pickle carries `_metadata`), then every dtype and layout case."""
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), bn=nn.BatchNorm2d(4)))
    with torch.no_grad():
        model.conv.weight.copy_(torch.arange(108, dtype=torch.float32).reshape(4, 3, 3, 3) / 64 - 0.8)
        model.conv.bias.copy_(torch.tensor([0.1, -0.2, 0.3, -0.4]))
        model.bn.weight.copy_(torch.arange(4, dtype=torch.float32) / 3 + 1)
        model.bn.bias.copy_(torch.arange(4, dtype=torch.float32) / 7 - 0.25)
        model.bn.running_mean.copy_(torch.arange(4, dtype=torch.float32) * 0.125)
        model.bn.running_var.copy_(torch.arange(4, dtype=torch.float32) + 0.5)
        model.bn.num_batches_tracked.fill_(7)
    sd = model.state_dict()

    sd["half"] = torch.tensor([0.0, 1.5, -2.25, 65504.0, 6e-8, 1 / 3, -0.0, 1e-5], dtype=torch.float16)
    sd["bf16"] = torch.tensor([1.0, -3.140625, 1e30, 1 / 3], dtype=torch.bfloat16)
    sd["double"] = torch.arange(6, dtype=torch.float64).reshape(2, 3) / 3 + 1e-12
    sd["long"] = torch.tensor([-3, 0, 2**40 + 1, -(2**33)], dtype=torch.int64)
    sd["int"] = torch.tensor([-(2**31), 5, 2**31 - 1], dtype=torch.int32)
    sd["short"] = torch.tensor([-(2**15), 7], dtype=torch.int16)
    sd["char"] = torch.tensor([-128, 127, -1], dtype=torch.int8)
    sd["byte"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["flags"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    # Non-contiguous layouts torch saves with their strides.
    sd["transposed"] = (torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8).t()
    sd["channels_last"] = (torch.arange(48, dtype=torch.float32).reshape(2, 4, 3, 2) - 20).contiguous(
        memory_format=torch.channels_last
    )
    # Two tensors over one storage: the view starts at element 5 and is strided.
    base = torch.arange(20, dtype=torch.float32) * 0.5
    sd["shared.base"] = base
    sd["shared.view"] = base[5:17].view(3, 4)[:, ::2]
    return sd


def check_layouts(sd):
    assert not sd["transposed"].is_contiguous()
    assert sd["channels_last"].is_contiguous(memory_format=torch.channels_last)
    assert sd["shared.view"].storage_offset() == 5 and not sd["shared.view"].is_contiguous()
    assert sd["shared.view"].storage().data_ptr() == sd["shared.base"].storage().data_ptr()


def expected_entries(sd):
    return [
        {
            "key": k,
            "dtype": DTYPE_NAME[t.dtype],
            "shape": list(t.shape),
            "values": t.float().flatten().tolist(),
        }
        for k, t in sd.items()
    ]


def write_safetensors(path: Path, sd) -> None:
    """The safetensors layout by hand: u64 LE header length, JSON header, then each tensor's bytes."""
    header, chunks, at = {}, [], 0
    for k, t in sd.items():
        t = t.contiguous()
        # numpy has no bfloat16: its bits go out as int16 (same size, same little-endian bytes).
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[k] = {"dtype": SAFETENSORS_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes with spaces
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def rewrite_zip(src: Path, dst: Path, edit=lambda name, data: data, compression=zipfile.ZIP_STORED) -> None:
    """Copies a torch zip entry by entry, letting `edit` change an entry's bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compression) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))


def rewrite_zip64(src: Path, dst: Path) -> None:
    """The same zip in ZIP64 form: zipfile writes ZIP64 records past ZIP64_LIMIT, so lower the limit."""
    limit = zipfile.ZIP64_LIMIT
    zipfile.ZIP64_LIMIT = 16
    try:
        rewrite_zip(src, dst)
    finally:
        zipfile.ZIP64_LIMIT = limit
    assert b"PK\x06\x06" in dst.read_bytes(), "no ZIP64 end of central directory record"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst) as b:
        assert all(a.read(n) == b.read(n) for n in a.namelist())


class Evil:
    """Unpickling this runs a shell command: the fixture for refusing globals (written, never loaded)."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sd = state_dict()
    check_layouts(sd)
    expected = {"torch": torch.__version__, "tensors": expected_entries(sd), "malformed": {}}

    torch.save(sd, OUT / "state-dict.pth")
    torch.save(sd, OUT / "legacy.pth", _use_new_zipfile_serialization=False)
    write_safetensors(OUT / "state-dict.safetensors", sd)
    torch.save({"state_dict": sd, "epoch": 3, "arch": "resnet50", "best_acc": 0.5}, OUT / "wrapped-state-dict.pth")
    torch.save({"model": sd}, OUT / "wrapped-model.pth")
    torch.save(OrderedDict(("module." + k, v) for k, v in sd.items()), OUT / "data-parallel.pth")
    # The same zip with deflated entries (torch stores them; other zip tools may not), and as ZIP64.
    rewrite_zip(OUT / "state-dict.pth", OUT / "deflated.pth", compression=zipfile.ZIP_DEFLATED)
    rewrite_zip64(OUT / "state-dict.pth", OUT / "zip64.pth")
    # Checked against what torch itself reads back (safe: these hold only tensors and plain values).
    # (torch 1.13's miniz refuses Python's small ZIP64 records, so zip64.pth is checked entry by entry.)
    for name in ["state-dict.pth", "legacy.pth", "data-parallel.pth"]:
        back = torch.load(OUT / name)
        assert [k.removeprefix("module.") for k in back] == list(sd), name
        for k, t in sd.items():
            assert torch.equal(back.get(k, back.get("module." + k)), t), (name, k)

    malformed = expected["malformed"]
    whole = (OUT / "state-dict.pth").read_bytes()
    (OUT / "truncated.pth").write_bytes(whole[: len(whole) // 2])
    malformed["truncated.pth"] = {}
    (OUT / "wrong-magic.pth").write_bytes(b"GIF89a\x01\x00\x01\x00 not a checkpoint at all")
    malformed["wrong-magic.pth"] = {"starts": "GIF89a"}
    torch.save({"epoch": 3, "arch": "resnet50"}, OUT / "no-tensors.pth")
    malformed["no-tensors.pth"] = {"keys": ["epoch", "arch"]}

    # A torch.save whose load would run os.system('echo pwned'): pickle names it by its module, posix.
    torch.save({"conv.weight": sd["conv.weight"], "payload": Evil()}, OUT / "evil-global.pth")
    with zipfile.ZipFile(OUT / "evil-global.pth") as z:
        archive = z.namelist()[0].split("/")[0]
        pkl = z.read(f"{archive}/data.pkl")
    assert b"csystem" in pkl or b"system" in pkl
    malformed["evil-global.pth"] = {"global": f"{os.system.__module__}.system"}
    # A whole pickled module instead of its state dict.
    torch.save(nn.Sequential(nn.Linear(2, 2)), OUT / "whole-model.pth")
    malformed["whole-model.pth"] = {"global": "torch.nn.modules.container.Sequential"}

    # conv.weight's storage (the first pickled) cut to 200 of its 432 bytes.
    with zipfile.ZipFile(OUT / "state-dict.pth") as z:
        archive = z.namelist()[0].split("/")[0]
    first = f"{archive}/data/0"  # torch numbers storages in pickling order: conv.weight's is the first
    rewrite_zip(OUT / "state-dict.pth", OUT / "short-storage.pth", lambda n, b: b[:200] if n == first else b)
    malformed["short-storage.pth"] = {"key": "conv.weight", "holds": 50, "needs": 108}

    legacy = (OUT / "legacy.pth").read_bytes()
    (OUT / "legacy-truncated.pth").write_bytes(legacy[:-40])
    malformed["legacy-truncated.pth"] = {}

    (OUT / "bad-header.safetensors").write_bytes(struct.pack("<Q", 24) + b'{"w": {"dtype": "F32", ]' + bytes(8))
    malformed["bad-header.safetensors"] = {}
    bad = {"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}
    text = json.dumps(bad).encode()
    (OUT / "bad-offsets.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + bytes(32))
    malformed["bad-offsets.safetensors"] = {"key": "w", "holds": 8, "needs": 16}

    # One tensor per line: readable in a diff, and small.
    lines = ",\n  ".join(json.dumps(t) for t in expected["tensors"])
    (OUT / "expected.json").write_text(
        f'{{\n "torch": "{expected["torch"]}",\n "tensors": [\n  {lines}\n ],\n'
        f' "malformed": {json.dumps(expected["malformed"])}\n}}\n'
    )
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:7d}  {p.name}")


if __name__ == "__main__":
    main()
