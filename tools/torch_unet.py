#!/usr/bin/python3
"""torch_unet.py — an independent PyTorch implementation of the paper's U-Net.

This is the reference the C network (src/04_unet.c) is checked against. It
follows the official TensorFlow code (hojonathanho/diffusion, models/unet.py)
and uses the parameter names of the widely used PyTorch port, which are the
checkpoint names of this project (DESIGN.md): conv_in, temb.dense.{0,1},
down.{i}.block.{j}.{norm1,conv1,temb_proj,norm2,conv2,nin_shortcut},
down.{i}.attn.{j}.{norm,q,k,v,proj_out}, down.{i}.downsample.conv, mid.block_1,
mid.attn_1, mid.block_2, up.{i}.block.{j}, up.{i}.attn.{j}, up.{i}.upsample.conv,
norm_out, conv_out.

It is never run by CI or `make test`; it needs Debian's python3-torch
(use /usr/bin/python3). Commands:

  tools/torch_unet.py params --config paper          parameter count
  tools/torch_unet.py golden --out tests/data/unet_golden.safetensors
  tools/torch_unet.py forward --ckpt M.safetensors --x X.npy --t T.npy --out Y.npy
  tools/torch_unet.py bench --config tiny --batch 32  seconds per step (2 threads)
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "tiny":  dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(16,), dropout=0.0),
    "small": dict(ch=64, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1),
    "paper": dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1),
}


# ---- the network ----------------------------------------------------------

def timestep_embedding(t, dim):
    """Sinusoidal embedding: half sin, half cos, frequencies exp(-ln(1e4) i/(half-1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def silu(x):
    return x * torch.sigmoid(x)


def group_norm(c, groups):
    return nn.GroupNorm(num_groups=groups, num_channels=c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, temb_ch, dropout, groups):
        super().__init__()
        self.norm1 = group_norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.temb_proj = nn.Linear(temb_ch, cout)
        self.norm2 = group_norm(cout, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x, temb):
        h = self.conv1(silu(self.norm1(x)))
        h = h + self.temb_proj(silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(silu(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = group_norm(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww)
        k = self.k(h).reshape(b, c, hh * ww)
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.einsum("bci,bcj->bij", q, k) * (c ** -0.5)   # [b, query i, key j]
        w = torch.softmax(w, dim=2)
        h = torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))   # pad right and bottom only


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, dropout,
                 in_ch=3, resolution=32, groups=32):
        super().__init__()
        self.ch = ch
        temb_ch = 4 * ch
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])
        self.conv_in = nn.Conv2d(in_ch, ch, 3, 1, 1)
        res, n_lv = resolution, len(ch_mult)
        in_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i in range(n_lv):
            lvl = nn.Module()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            cin, cout = ch * in_mult[i], ch * ch_mult[i]
            for _ in range(num_res_blocks):
                lvl.block.append(ResnetBlock(cin, cout, temb_ch, dropout, groups))
                cin = cout
                if res in attn_resolutions:
                    lvl.attn.append(AttnBlock(cin, groups))
            if i != n_lv - 1:
                lvl.downsample = Downsample(cin)
                res //= 2
            self.down.append(lvl)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(cin, cin, temb_ch, dropout, groups)
        self.mid.attn_1 = AttnBlock(cin, groups)
        self.mid.block_2 = ResnetBlock(cin, cin, temb_ch, dropout, groups)
        self.up = nn.ModuleList()
        for i in reversed(range(n_lv)):
            lvl = nn.Module()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            cout, skip = ch * ch_mult[i], ch * ch_mult[i]
            for j in range(num_res_blocks + 1):
                if j == num_res_blocks:
                    skip = ch * in_mult[i]
                lvl.block.append(ResnetBlock(cin + skip, cout, temb_ch, dropout, groups))
                cin = cout
                if res in attn_resolutions:
                    lvl.attn.append(AttnBlock(cin, groups))
            if i != 0:
                lvl.upsample = Upsample(cin)
                res *= 2
            self.up.insert(0, lvl)
        self.norm_out = group_norm(cin, groups)
        self.conv_out = nn.Conv2d(cin, in_ch, 3, 1, 1)

    def forward(self, x, t):
        temb = timestep_embedding(t, self.ch)
        temb = self.temb.dense[1](silu(self.temb.dense[0](temb)))
        hs = [self.conv_in(x)]
        for i, lvl in enumerate(self.down):
            for j, blk in enumerate(lvl.block):
                h = blk(hs[-1], temb)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
                hs.append(h)
            if hasattr(lvl, "downsample"):
                hs.append(lvl.downsample(hs[-1]))
        h = hs[-1]
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h, temb)), temb)
        for i in reversed(range(len(self.up))):
            lvl = self.up[i]
            for j, blk in enumerate(lvl.block):
                h = blk(torch.cat([h, hs.pop()], dim=1), temb)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(silu(self.norm_out(h)))


def glorot_(model, zero_last=True):
    """The official initialisation: fan-avg uniform everywhere, biases zero,
    and (zero_last) scale 1e-10 for each ResBlock conv2, attention proj_out,
    and conv_out."""
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            nn.init.zeros_(p)
        elif p.dim() >= 2:
            fan_in = p.shape[1] * (p[0, 0].numel() if p.dim() > 2 else 1)
            fan_out = p.shape[0] * (p[0, 0].numel() if p.dim() > 2 else 1)
            scale = 1e-10 if zero_last and (name.endswith("conv2.weight") or
                                            name.endswith("proj_out.weight") or
                                            name == "conv_out.weight") else 1.0
            limit = math.sqrt(3 * scale / ((fan_in + fan_out) / 2))
            nn.init.uniform_(p, -limit, limit)


# ---- files: safetensors and .npy, written by hand (no extra packages) -------

def save_safetensors(path, tensors, meta=None):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr.tobytes())
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", f"{name}: dtype {e['dtype']}"
        b, en = e["data_offsets"]
        out[name] = np.frombuffer(data[b:en], dtype="<f4").reshape(e["shape"])
    return out, header.get("__metadata__", {})


# ---- commands ---------------------------------------------------------------

def build(args):
    cfg = dict(CONFIGS[args.config])
    for k in ("ch", "num_res_blocks"):
        if getattr(args, k, None):
            cfg[k] = getattr(args, k)
    return UNet(**cfg, in_ch=args.in_ch, groups=args.groups)


def cmd_params(args):
    m = build(args)
    print(sum(p.numel() for p in m.parameters()))


def cmd_golden(args):
    """Random non-zero weights (no zero-init, so every gradient is informative),
    an input batch, t, the output, a fixed random cotangent R and the gradient
    of sum(R * out) with respect to every parameter and the input."""
    torch.manual_seed(args.seed)
    m = build(args).eval()
    glorot_(m, zero_last=False)
    with torch.no_grad():
        for name, p in m.named_parameters():   # make biases and norms non-trivial
            if name.endswith(".bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(args.batch, args.in_ch, args.res, args.res, requires_grad=True)
    t = torch.tensor([int(v) for v in args.t.split(",")][: args.batch], dtype=torch.int64)
    out = m(x, t)
    r = torch.randn_like(out)
    (out * r).sum().backward()
    tensors = {n: p.detach().numpy() for n, p in m.named_parameters()}
    tensors["golden.x"] = x.detach().numpy()
    tensors["golden.t"] = t.float().numpy()
    tensors["golden.out"] = out.detach().numpy()
    tensors["golden.r"] = r.numpy()
    tensors["golden.grad.x"] = x.grad.numpy()
    for n, p in m.named_parameters():
        tensors["golden.grad." + n] = p.grad.numpy()
    cfg = dict(CONFIGS[args.config], ch=args.ch or CONFIGS[args.config]["ch"])
    meta = {"config": args.config, "ch": str(cfg["ch"]), "groups": str(args.groups),
            "in_ch": str(args.in_ch), "resolution": str(args.res),
            "generator": "tools/torch_unet.py golden, torch " + torch.__version__}
    save_safetensors(args.out, tensors, meta)
    print(f"wrote {args.out}: {len(tensors)} tensors, "
          f"{sum(v.size for v in tensors.values()) * 4 / 1e6:.2f} MB")


def cmd_forward(args):
    m = build(args).eval()
    sd, _ = load_safetensors(args.ckpt)
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()
                       if not k.startswith("train.")}, strict=True)
    x = torch.from_numpy(np.load(args.x).astype(np.float32))
    t = torch.from_numpy(np.load(args.t)).long()
    with torch.no_grad():
        y = m(x, t)
    np.save(args.out, y.numpy())
    print(f"wrote {args.out} {tuple(y.shape)}")


def cmd_bench(args):
    """The same training step as the C trainer_step: x_t = q_sample(x0, t, eps),
    L_simple = mean (eps - eps_theta(x_t, t))^2, backward, clip the global
    gradient norm to 1, Adam (lr 2e-4), EMA 0.9999 of the weights; and the
    no-grad forward of sampling. One warm-up call each, then the best of
    --repeats. Prints one JSON line with seconds and this process's peak RSS."""
    import resource
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = build(args)
    m.train()
    B = args.batch
    x0 = torch.rand(B, args.in_ch, args.res, args.res) * 2 - 1
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float()
    opt = torch.optim.Adam(m.parameters(), lr=2e-4)
    ema = [p.detach().clone() for p in m.parameters()]

    def step():
        t = torch.randint(0, 1000, (B,))
        eps = torch.randn_like(x0)
        a = abar[t].view(B, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        opt.zero_grad(set_to_none=True)
        loss = ((eps - m(xt, t)) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, m.parameters()):
                e.mul_(0.9999).add_(p, alpha=1 - 0.9999)

    t_fwd = torch.randint(0, 1000, (B,))

    def fwd():
        with torch.no_grad():
            m(x0, t_fwd)
    res = {}
    for name, fn in (("train_step", step), ("forward_nograd", fwd)):
        fn()
        best = 1e30
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        res[name] = best
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"config": args.config, "batch": args.batch, "threads": args.threads, **res}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("params", "golden", "forward", "bench"):
        s = sub.add_parser(name)
        s.add_argument("--config", default="tiny", choices=CONFIGS)
        s.add_argument("--ch", type=int, default=0)
        s.add_argument("--num-res-blocks", dest="num_res_blocks", type=int, default=0)
        s.add_argument("--in-ch", dest="in_ch", type=int, default=3)
        s.add_argument("--groups", type=int, default=32)
        s.add_argument("--res", type=int, default=32)
    sub.choices["golden"].add_argument("--out", required=True)
    sub.choices["golden"].add_argument("--seed", type=int, default=0)
    sub.choices["golden"].add_argument("--batch", type=int, default=2)
    sub.choices["golden"].add_argument("--t", default="0,999,500,17")
    for k in ("ckpt", "x", "t", "out"):
        sub.choices["forward"].add_argument("--" + k, required=True)
    sub.choices["bench"].add_argument("--batch", type=int, default=32)
    sub.choices["bench"].add_argument("--threads", type=int, default=2)
    sub.choices["bench"].add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    {"params": cmd_params, "golden": cmd_golden, "forward": cmd_forward, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
