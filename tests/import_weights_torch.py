#!/usr/bin/python3
"""import_weights_torch.py — the checkpoint importer against PyTorch (run by
tests/import_weights.sh when python3-torch is installed).

For each network (the tiny and paper configs) it makes a random model with
tools/torch_unet.py (every weight and bias non-zero, so no layer can hide),
saves it the ways released checkpoints come (pytorch_diffusion names, plain
and inside a dict; diffusers UNet2DModel names with either attention
convention, as .bin and .safetensors), imports each with
tools/import_weights.py, runs `ddpm forward` on the result and compares with
the PyTorch forward. The diffusers names here are written from ours by
rewrite rules of their own (the direction diffusers' conversion script
goes), not by the importer's table. Then three broken files (one tensor
missing, one extra, one of the wrong shape) must each be refused with the
tensor's name.

  tests/import_weights_torch.py build/ddpm WORKDIR [--quick] [--write-committed DIR]

--quick: the tiny network only (seconds; for trying changes to the importer).

--write-committed DIR writes the small converted file and its input and
expected output that tests/import_weights.sh checks without PyTorch.
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in tools/
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import torch_unet            # noqa: E402
import import_weights        # noqa: E402

TOL = 1e-4


def random_model(config, seed, **over):
    torch.manual_seed(seed)
    cfg = dict(torch_unet.CONFIGS[config], **{k: v for k, v in over.items() if k != "groups"})
    m = torch_unet.UNet(**cfg, groups=over.get("groups", 32)).eval()
    torch_unet.glorot_(m, zero_last=False)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(".bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return m


# ---- diffusers names, written from ours ---------------------------------------

def to_diffusers(sd, n_levels, new_attention):
    """Our state_dict renamed as diffusers' UNet2DModel holds it."""
    top = [(r"^temb\.dense\.0\.", "time_embedding.linear_1."),
           (r"^temb\.dense\.1\.", "time_embedding.linear_2."),
           (r"^norm_out\.", "conv_norm_out."),
           (r"^mid\.block_1\.", "mid_block.resnets.0."),
           (r"^mid\.block_2\.", "mid_block.resnets.1."),
           (r"^mid\.attn_1\.", "mid_block.attentions.0."),
           (r"^down\.(\d+)\.block\.", r"down_blocks.\1.resnets."),
           (r"^down\.(\d+)\.attn\.", r"down_blocks.\1.attentions."),
           (r"^down\.(\d+)\.downsample\.", r"down_blocks.\1.downsamplers.0.")]
    if new_attention:
        attn = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
    else:
        attn = {"norm": "group_norm", "q": "query", "k": "key", "v": "value", "proj_out": "proj_attn"}
    out = {}
    for name, v in sd.items():
        new = name
        for pat, rep in top:
            new = re.sub(pat, rep, new)
        m = re.match(r"^up\.(\d+)\.(block|attn|upsample)\.(.*)$", new)
        if m:   # the up path runs from the lowest resolution: reverse its numbering
            kind = {"block": "resnets", "attn": "attentions", "upsample": "upsamplers.0"}[m.group(2)]
            new = f"up_blocks.{n_levels - 1 - int(m.group(1))}.{kind}.{m.group(3)}"
        new = new.replace(".temb_proj.", ".time_emb_proj.").replace(".nin_shortcut.", ".conv_shortcut.")
        m = re.match(r"^(.*\.attentions\.\d+)\.(norm|q|k|v|proj_out)\.(weight|bias)$", new)
        if m:
            new = f"{m.group(1)}.{attn[m.group(2)]}.{m.group(3)}"
            if v.dim() == 4:
                v = v[:, :, 0, 0]   # attention projections are Linear layers there
        assert new not in out, new
        out[new] = v.clone()
    return out


def save(path, sd, wrap=None):
    if path.endswith(".safetensors"):
        torch_unet.save_safetensors(path, {k: v.numpy() for k, v in sd.items()})
    else:
        torch.save({wrap: sd, "step": 790000} if wrap else sd, path)


# ---- running ------------------------------------------------------------------

def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def importer(*args, cli=False):
    """tools/import_weights.py as a program (cli), or its main() in this
    process (no second PyTorch start-up: the test stays fast)."""
    if cli:
        return run([sys.executable, os.path.join(HERE, "..", "tools", "import_weights.py"), *args])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = import_weights.main(list(args))
        except SystemExit as e:   # argparse
            rc = e.code
    return Result(rc, out.getvalue(), err.getvalue())


FAILS = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILS.append(what)


def forward_matches(ddpm, ckpt, x, t, y_ref, work, what, extra=()):
    out = os.path.join(work, "y_c.npy")
    r = run([ddpm, "forward", "--ckpt", ckpt, "--x", x, "--t", t, "--out", out, *extra])
    if r.returncode != 0:
        check(False, f"{what}: ddpm forward failed: {r.stderr.strip()}")
        return
    y = np.load(out)
    err = float(np.abs(y - y_ref).max())
    check(y.shape == y_ref.shape and err <= TOL,
          f"{what}: ddpm forward vs PyTorch, max |diff| {err:.2e} (max |y| {np.abs(y_ref).max():.2f})")


def main():
    ddpm, work, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    committed = rest[1] if rest[:1] == ["--write-committed"] and len(rest) > 1 else None
    configs = ("tiny",) if "--quick" in rest else ("tiny", "paper")
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(2)
    if committed:
        return write_committed(committed, work)
    x_np = np.random.RandomState(1).randn(2, 3, 32, 32).astype(np.float32)
    t_np = np.array([3, 901], dtype=np.float32)
    x, t = os.path.join(work, "x.npy"), os.path.join(work, "t.npy")
    np.save(x, x_np)
    np.save(t, t_np)
    for config in configs:
        m = random_model(config, seed=7)
        with torch.no_grad():
            y_ref = m(torch.from_numpy(x_np), torch.from_numpy(t_np).long()).numpy()
        sd = m.state_dict()
        L = len(torch_unet.CONFIGS[config]["ch_mult"])
        layouts = [("pytorch_diffusion.ckpt", sd, None),
                   ("diffusers_query_key.bin", to_diffusers(sd, L, False), None),
                   ("diffusers_to_q.safetensors", to_diffusers(sd, L, True), None)]
        if config == "tiny":   # the rest of the ways a file comes, on the small network
            layouts += [("pytorch_diffusion_ema.ckpt", sd, "ema"),
                        ("pytorch_diffusion_sd.pt", sd, "state_dict"),
                        ("pytorch_diffusion_model.safetensors", sd, None),
                        ("diffusers_to_q.bin", to_diffusers(sd, L, True), "model"),
                        ("diffusers_query_key.safetensors", to_diffusers(sd, L, False), None)]
        for k, (fname, d, wrap) in enumerate(layouts):
            src = os.path.join(work, f"{config}_{fname}")
            dst = src.rsplit(".", 1)[0] + ".imported.safetensors"
            save(src, d, wrap)
            args = [src, "--out", dst] + (["--config", "paper"] if config == "paper" else [])
            r = importer(*args, cli=(k == 0))
            if r.returncode != 0:
                check(False, f"{config} {fname}: import failed: {r.stderr.strip()}")
                continue
            want = f"config {config} "
            check(want in r.stdout, f"{config} {fname}: imported as the {config} config")
            forward_matches(ddpm, dst, x, t, y_ref, work, f"{config} {fname}")
        if config == "tiny":
            broken(work, sd, L)
    print(f"import_weights: {len(FAILS)} failure(s)")
    return 1 if FAILS else 0


def broken(work, sd, L):
    """One tensor missing, one extra, one of the wrong shape: each refused, by name."""
    d = to_diffusers(sd, L, True)
    cases = []
    miss = dict(d)
    del miss["up_blocks.1.attentions.0.to_k.weight"]
    cases.append(("missing", miss, "up_blocks.1.attentions.0.to_k.weight"))
    extra = dict(d)
    extra["mid_block.attentions.1.to_q.weight"] = torch.zeros(64, 64)
    cases.append(("extra", extra, "mid_block.attentions.1.to_q.weight"))
    wrong = dict(d)
    wrong["down_blocks.1.resnets.0.conv1.weight"] = torch.zeros(64, 32, 3, 1)
    cases.append(("wrong shape", wrong, "down_blocks.1.resnets.0.conv1.weight"))
    pd_wrong = dict(sd)
    pd_wrong["up.0.block.1.nin_shortcut.bias"] = torch.zeros(31)
    cases.append(("wrong shape (pytorch_diffusion names)", pd_wrong, "up.0.block.1.nin_shortcut.bias"))
    # diffusers' config.json beside the weights: the paper's settings pass,
    # a network that computes something else is refused by the setting's name.
    hub = os.path.join(work, "hub")
    os.makedirs(hub, exist_ok=True)
    save(os.path.join(hub, "diffusion_pytorch_model.bin"), d)
    conf = {"_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": None,
            "block_out_channels": [32, 64, 64], "center_input_sample": False,
            "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1,
            "in_channels": 3, "layers_per_block": 1, "mid_block_scale_factor": 1,
            "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
            "time_embedding_type": "positional"}
    for key, value in ((None, None), ("flip_sin_to_cos", True), ("attention_head_dim", 8)):
        c = dict(conf)
        if key:
            c[key] = value
        with open(os.path.join(hub, "config.json"), "w") as f:
            json.dump(c, f)
        r = importer(os.path.join(hub, "diffusion_pytorch_model.bin"), "--out",
                     os.path.join(hub, "out.safetensors"))
        if key is None:
            check(r.returncode == 0 and "checked against" in r.stdout,
                  "diffusers config.json with the paper's settings: accepted")
        else:
            check(r.returncode == 1 and key in r.stderr,
                  f"diffusers config.json with {key} = {value}: refused naming it")
    for what, dd, name in cases:
        src = os.path.join(work, "broken.bin")
        dst = os.path.join(work, "broken.safetensors")
        if os.path.exists(dst):
            os.remove(dst)
        save(src, dd)
        r = importer(src, "--out", dst, cli=(what == "missing"))
        check(r.returncode == 1 and name in r.stderr and not os.path.exists(dst),
              f"{what}: refused naming {name}" + ("" if r.returncode == 1 else
                                                  f" (exit {r.returncode}: {r.stdout.strip()})"))


def write_committed(out, work):
    """A small network (ch 8, 4 GroupNorm groups) saved in diffusers names,
    imported; the converted file, an input and PyTorch's output."""
    m = random_model("tiny", seed=11, ch=8, groups=4)
    L = 3
    src = os.path.join(work, "diffusion_pytorch_model.safetensors")
    save(src, to_diffusers(m.state_dict(), L, False))
    dst = os.path.join(out, "import_small.safetensors")
    r = importer(src, "--out", dst, "--groups", "4")
    print(r.stdout + r.stderr, end="")
    if r.returncode:
        return 1
    x_np = np.random.RandomState(2).randn(2, 3, 32, 32).astype(np.float32)
    t_np = np.array([0, 999], dtype=np.float32)
    with torch.no_grad():
        y = m(torch.from_numpy(x_np), torch.from_numpy(t_np).long()).numpy()
    np.save(os.path.join(out, "import_small_x.npy"), x_np)
    np.save(os.path.join(out, "import_small_t.npy"), t_np)
    np.save(os.path.join(out, "import_small_y.npy"), y)
    print(f"wrote {out}/import_small{{.safetensors,_x.npy,_t.npy,_y.npy}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
