#!/usr/bin/python3
"""import_weights.py — a released PyTorch checkpoint of the paper's U-Net, as
this project's safetensors.

The paper's CIFAR-10 model circulates in two namings:

  pytorch_diffusion   the PyTorch port of the official code; its state_dict
                      names are this project's names (conv_in, temb.dense.0,
                      down.0.block.0.conv1, down.1.attn.0.q, mid.attn_1, ...),
                      e.g. diffusion_cifar10_model/model-790000.ckpt
  diffusers           UNet2DModel (e.g. google/ddpm-cifar10-32):
                      time_embedding.linear_1, down_blocks.0.resnets.0.conv1,
                      down_blocks.1.attentions.0.{query,key,value,proj_attn} or
                      ...{to_q,to_k,to_v,to_out.0} (Linear [C, C] weights),
                      mid_block.resnets.0, up_blocks.0 = the lowest-resolution
                      level (the up path is listed in the other order),
                      conv_norm_out

It reads a plain state_dict or a dict holding one (under state_dict, model or
ema; --key picks one when there are several), from a .ckpt/.pt/.pth/.bin file
(torch.load, tensors only) or a .safetensors file; infers the network's
config from the tensor shapes (or checks them against --config and the
network flags); checks that every tensor of the network is there with the
expected shape and that no tensor of the file is left over; and writes the
weights under this project's names with the config in the file's metadata
(ddpm.* keys), so every ddpm command loads it without flags.

Two things a file's tensors cannot say: the image size (--resolution, 32)
and the GroupNorm group count (--groups, 32). For diffusers, a config.json
next to the weights (or --diffusers-config) is read and checked: the
network must be the paper's (one attention head, sinusoidal embedding with
sin first and frequency shift 1, the (0,1,0,1) downsampling pad, GroupNorm
eps 1e-6); anything else would load and compute something different.

Needs Debian's python3-numpy, and python3-torch for every format but
.safetensors. Usage:

  tools/import_weights.py IN --out OUT.safetensors [--config paper] [flags]
  tools/import_weights.py IN --list       the layout, config and names; writes nothing
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

PRESETS = {   # the configs of src/04_unet.c
    "tiny":  dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn=(16,), dropout=0.0),
    "small": dict(ch=64, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn=(16,), dropout=0.1),
    "paper": dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn=(16,), dropout=0.1),
}
WRAPPERS = ("state_dict", "model", "ema")   # the dict keys that may hold the state_dict


class BadCheckpoint(Exception):
    """A problem with the input file: printed as one message, exit status 1."""


# ---- reading ------------------------------------------------------------------

def read_safetensors(path):
    """name -> float32 array, for F32, F16, BF16 and F64 tensors; numpy only."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise BadCheckpoint(f"{path}: too short for a safetensors file")
    n = struct.unpack("<Q", raw[:8])[0]
    if n > len(raw) - 8:
        raise BadCheckpoint(f"{path}: header of {n} bytes is longer than the file")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as e:
        raise BadCheckpoint(f"{path}: header is not JSON ({e})")
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        buf = data[b:en]
        dt = e["dtype"]
        if dt == "F32":
            a = np.frombuffer(buf, "<f4")
        elif dt == "F16":
            a = np.frombuffer(buf, "<f2").astype(np.float32)
        elif dt == "F64":
            a = np.frombuffer(buf, "<f8").astype(np.float32)
        elif dt == "BF16":   # the top half of a float32
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise BadCheckpoint(f"{path}: tensor {name} has dtype {dt}; only float tensors "
                               "are weights")
        out[name] = a.reshape(e["shape"]).astype(np.float32)
    return out


def torch_load(path, unsafe):
    try:
        import torch
    except ImportError:
        raise BadCheckpoint(f"{path}: reading this format needs PyTorch (Debian: "
                           "apt-get install python3-torch); .safetensors needs only numpy")
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe)
    except TypeError:   # a PyTorch older than 1.13 has no weights_only
        if not unsafe:
            raise BadCheckpoint(f"{path}: this PyTorch cannot load tensors only; "
                               "pass --unsafe-pickle if you trust the file")
        return torch.load(path, map_location="cpu")
    except Exception as e:
        raise BadCheckpoint(f"{path}: torch.load failed ({str(e).splitlines()[0][:200]}); a "
                           "file that pickles more than tensors needs --unsafe-pickle, "
                           "only for a file you trust")


def is_tensor(v):
    return hasattr(v, "detach") and hasattr(v, "shape")


def pick_state_dict(obj, key, path):
    """The state_dict inside what torch.load returned."""
    if not isinstance(obj, dict):
        raise BadCheckpoint(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    if key:
        if key not in obj or not isinstance(obj[key], dict):
            raise BadCheckpoint(f"{path}: no dict of tensors under '{key}' "
                               f"(top-level keys: {', '.join(map(str, list(obj)[:12]))})")
        return pick_state_dict(obj[key], None, f"{path}[{key}]")
    if obj and all(is_tensor(v) for v in obj.values()):
        return obj
    found = [k for k in WRAPPERS if isinstance(obj.get(k), dict)]
    if len(found) == 1:
        return pick_state_dict(obj[found[0]], None, f"{path}[{found[0]}]")
    if len(found) > 1:
        raise BadCheckpoint(f"{path}: holds several state_dicts ({', '.join(found)}); "
                           "choose one with --key (ema gives the paper's samples)")
    bad = [k for k, v in obj.items() if not is_tensor(v)][:5]
    raise BadCheckpoint(f"{path}: not a state_dict (entries that are not tensors: "
                       f"{', '.join(map(str, bad))}) and no {', '.join(WRAPPERS)} key in it")


def read_checkpoint(path, key=None, unsafe=False):
    if not os.path.exists(path):
        raise BadCheckpoint(f"{path}: no such file")
    if path.endswith(".safetensors"):
        sd = read_safetensors(path)
        if key:
            pre = key + "."
            sd = {k[len(pre):]: v for k, v in sd.items() if k.startswith(pre)}
            if not sd:
                raise BadCheckpoint(f"{path}: no tensor name starts with '{pre}'")
    else:
        sd = {k: v.detach().float().numpy() for k, v in
              pick_state_dict(torch_load(path, unsafe), key, path).items()}
    # nn.DataParallel saves every name with a module. prefix.
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


# ---- the network's tensors, in this project's names ---------------------------

def conv(o, i, k):
    return (o, i, k, k)


def resblock(p, cin, cout, temb):
    out = [(p + "norm1.weight", (cin,)), (p + "norm1.bias", (cin,)),
           (p + "conv1.weight", conv(cout, cin, 3)), (p + "conv1.bias", (cout,)),
           (p + "temb_proj.weight", (cout, temb)), (p + "temb_proj.bias", (cout,)),
           (p + "norm2.weight", (cout,)), (p + "norm2.bias", (cout,)),
           (p + "conv2.weight", conv(cout, cout, 3)), (p + "conv2.bias", (cout,))]
    if cin != cout:
        out += [(p + "nin_shortcut.weight", conv(cout, cin, 1)), (p + "nin_shortcut.bias", (cout,))]
    return out


def attnblock(p, c):
    out = [(p + "norm.weight", (c,)), (p + "norm.bias", (c,))]
    for m in ("q", "k", "v", "proj_out"):
        out += [(p + m + ".weight", conv(c, c, 1)), (p + m + ".bias", (c,))]
    return out


def network_tensors(cfg):
    """[(name, shape)] of the U-Net with config cfg, in the order PyTorch lists
    them (the order of unet_build in src/04_unet.c)."""
    ch, mult, nrb = cfg["ch"], cfg["ch_mult"], cfg["num_res_blocks"]
    temb, L = 4 * ch, len(mult)
    in_mult = (1,) + tuple(mult)
    attn_at = [(cfg["resolution"] >> i) in cfg["attn"] for i in range(L)]
    t = [("temb.dense.0.weight", (temb, ch)), ("temb.dense.0.bias", (temb,)),
         ("temb.dense.1.weight", (temb, temb)), ("temb.dense.1.bias", (temb,)),
         ("conv_in.weight", conv(ch, cfg["in_ch"], 3)), ("conv_in.bias", (ch,))]
    cin = ch
    for i in range(L):
        cout = ch * mult[i]
        cin = ch * in_mult[i]
        for j in range(nrb):
            t += resblock(f"down.{i}.block.{j}.", cin, cout, temb)
            cin = cout
        if attn_at[i]:
            for j in range(nrb):
                t += attnblock(f"down.{i}.attn.{j}.", cout)
        if i != L - 1:
            t += [(f"down.{i}.downsample.conv.weight", conv(cout, cout, 3)),
                  (f"down.{i}.downsample.conv.bias", (cout,))]
    t += resblock("mid.block_1.", cin, cin, temb) + attnblock("mid.attn_1.", cin) + \
        resblock("mid.block_2.", cin, cin, temb)
    # PyTorch lists up.0 first, but builds up.{L-1} first: channels flow from the bottom.
    ups, c = {}, cin
    for i in reversed(range(L)):
        cout, part = ch * mult[i], []
        for j in range(nrb + 1):
            skip = ch * mult[i] if j < nrb else ch * in_mult[i]
            part += resblock(f"up.{i}.block.{j}.", c + skip, cout, temb)
            c = cout
        if attn_at[i]:
            for j in range(nrb + 1):
                part += attnblock(f"up.{i}.attn.{j}.", cout)
        if i != 0:
            part += [(f"up.{i}.upsample.conv.weight", conv(cout, cout, 3)),
                     (f"up.{i}.upsample.conv.bias", (cout,))]
        ups[i] = part
    for i in range(L):
        t += ups[i]
    t += [("norm_out.weight", (c,)), ("norm_out.bias", (c,)),
          ("conv_out.weight", conv(cfg["out_ch"], c, 3)), ("conv_out.bias", (cfg["out_ch"],))]
    return t


# ---- the two namings ----------------------------------------------------------

DIFFUSERS_RES = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj",
                 "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
# Our attention module -> diffusers' two conventions (old AttentionBlock, Attention).
DIFFUSERS_ATTN = {"norm": ("group_norm",), "q": ("query", "to_q"), "k": ("key", "to_k"),
                  "v": ("value", "to_v"), "proj_out": ("proj_attn", "to_out.0")}


def diffusers_names(name, L):
    """The names our tensor `name` may have in a diffusers UNet2DModel with L
    levels (two when its attention convention is not yet known)."""
    s = name.split(".")
    leaf = s[-1]   # weight / bias
    if s[0] == "temb":
        return ["time_embedding.linear_%d.%s" % (int(s[2]) + 1, leaf)]
    if s[0] in ("conv_in", "conv_out"):
        return [name]
    if s[0] == "norm_out":
        return ["conv_norm_out." + leaf]
    if s[0] == "mid":
        if s[1] == "attn_1":
            return ["mid_block.attentions.0.%s.%s" % (a, leaf) for a in DIFFUSERS_ATTN[s[2]]]
        j = {"block_1": 0, "block_2": 1}[s[1]]
        return ["mid_block.resnets.%d.%s.%s" % (j, DIFFUSERS_RES[s[2]], leaf)]
    i = int(s[1])
    # diffusers numbers the up path in the order it runs: up_blocks.0 is our up.{L-1}.
    pre = "down_blocks.%d" % i if s[0] == "down" else "up_blocks.%d" % (L - 1 - i)
    if s[2] in ("downsample", "upsample"):
        return ["%s.%ssamplers.0.conv.%s" % (pre, s[2][:-6], leaf)]
    j = int(s[3])
    if s[2] == "block":
        return ["%s.resnets.%d.%s.%s" % (pre, j, DIFFUSERS_RES[s[4]], leaf)]
    return ["%s.attentions.%d.%s.%s" % (pre, j, a, leaf) for a in DIFFUSERS_ATTN[s[4]]]


def detect_layout(sd, path):
    if "temb.dense.0.weight" in sd:
        return "pytorch_diffusion"
    if "time_embedding.linear_1.weight" in sd:
        return "diffusers"
    some = ", ".join(sorted(sd)[:6])
    raise BadCheckpoint(f"{path}: neither pytorch_diffusion names (temb.dense.0.weight) nor "
                       f"diffusers UNet2DModel names (time_embedding.linear_1.weight); "
                       f"the file's first names: {some}")


def source_names(layout, name, L):
    return [name] if layout == "pytorch_diffusion" else diffusers_names(name, L)


def lookup(sd, layout, name, L):
    for n in source_names(layout, name, L):
        if n in sd:
            return n
    return None


def infer_config(sd, layout, path, resolution):
    """The config the file's shapes describe (resolution and groups aside)."""
    def shape(name, L=1):
        n = lookup(sd, layout, name, L)
        if n is None:
            raise BadCheckpoint(f"{path}: cannot infer the config: no tensor "
                               f"{source_names(layout, name, L)[0]}")
        return sd[n].shape
    w = shape("conv_in.weight")
    ch, in_ch = int(w[0]), int(w[1])
    L = 0
    while lookup(sd, layout, f"down.{L}.block.0.conv1.weight", 1):
        L += 1
    if L == 0:
        raise BadCheckpoint(f"{path}: cannot infer the config: no down level "
                           f"({source_names(layout, 'down.0.block.0.conv1.weight', 1)[0]})")
    nrb = 0
    while lookup(sd, layout, f"down.0.block.{nrb}.conv1.weight", L):
        nrb += 1
    mult = []
    for i in range(L):
        c = int(shape(f"down.{i}.block.0.conv1.weight")[0])
        if c % ch:
            raise BadCheckpoint(f"{path}: level {i} has {c} channels, not a multiple of {ch}")
        mult.append(c // ch)
    attn = tuple(resolution >> i for i in range(L)
                 if lookup(sd, layout, f"down.{i}.attn.0.norm.weight", L))
    out_ch = int(shape("conv_out.weight", L)[0])
    return dict(ch=ch, ch_mult=tuple(mult), num_res_blocks=nrb, attn=attn, in_ch=in_ch,
                out_ch=out_ch, resolution=resolution)


def preset_name(cfg):
    for name, p in PRESETS.items():
        if all(cfg[k] == p[k] for k in ("ch", "ch_mult", "num_res_blocks", "attn")) and \
                (cfg["in_ch"], cfg["out_ch"], cfg["resolution"], cfg["groups"]) == (3, 3, 32, 32):
            return name
    return "imported"


def convert(sd, layout, cfg, path):
    """Our name -> array for every tensor of cfg's network; every problem is
    collected and raised together, each naming its tensor."""
    L = len(cfg["ch_mult"])
    out, used, problems = {}, set(), []
    for name, want in network_tensors(cfg):
        src = lookup(sd, layout, name, L)
        if src is None:
            alts = source_names(layout, name, L)
            problems.append(f"missing tensor {' or '.join(alts)}" +
                            (f" (our {name})" if alts != [name] else ""))
            continue
        used.add(src)
        a = sd[src]
        if tuple(a.shape) == want:
            out[name] = a
        elif len(want) == 4 and want[2:] == (1, 1) and tuple(a.shape) == want[:2]:
            out[name] = a.reshape(want)   # Linear [out, in] -> 1x1 conv [out, in, 1, 1]
        else:
            problems.append(f"tensor {src} has shape {list(a.shape)}, the network "
                            f"({describe(cfg)}) needs {list(want)}")
    for src in sorted(set(sd) - used):
        problems.append(f"unexpected tensor {src} {list(sd[src].shape)}: not part of the "
                        f"network ({describe(cfg)})")
    if problems:
        more = f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else ""
        raise BadCheckpoint(f"{path}: {len(problems)} problem(s), nothing written:\n  " +
                           "\n  ".join(problems[:12]) + more)
    return out


def describe(cfg):
    return "ch %d, ch_mult %s, %d res blocks, attention at %s, %d groups" % (
        cfg["ch"], ",".join(map(str, cfg["ch_mult"])), cfg["num_res_blocks"],
        ",".join(map(str, cfg["attn"])) or "none", cfg["groups"])


# ---- diffusers' config.json ---------------------------------------------------

def check_diffusers_config(path, cfg):
    """Refuse a UNet2DModel whose forward differs from the paper's network."""
    with open(path) as f:
        c = json.load(f)
    need = {"_class_name": "UNet2DModel", "time_embedding_type": "positional",
            "flip_sin_to_cos": False, "freq_shift": 1, "downsample_padding": 0,
            "norm_eps": 1e-6, "act_fn": "silu", "center_input_sample": False,
            "mid_block_scale_factor": 1, "resnet_time_scale_shift": "default",
            "class_embed_type": None, "num_class_embeds": None,
            "downsample_type": "conv", "upsample_type": "conv"}
    bad = [f"{k} is {json.dumps(c[k])}, the paper's network has {json.dumps(v)}"
           for k, v in need.items() if k in c and c[k] != v]
    heads = c.get("attention_head_dim")
    if heads is not None and any(heads != cfg["ch"] * m for i, m in enumerate(cfg["ch_mult"])
                                 if (cfg["resolution"] >> i) in cfg["attn"]):
        bad.append(f"attention_head_dim is {heads}: several attention heads; the paper's "
                   "network has one (null)")
    if "norm_num_groups" in c and c["norm_num_groups"] != cfg["groups"]:
        bad.append(f"norm_num_groups is {c['norm_num_groups']}; pass --groups "
                   f"{c['norm_num_groups']}")
    if "sample_size" in c and c["sample_size"] != cfg["resolution"]:
        bad.append(f"sample_size is {c['sample_size']}; pass --resolution {c['sample_size']}")
    if bad:
        raise BadCheckpoint(f"{path}: " + "; ".join(bad))
    return c


# ---- writing ------------------------------------------------------------------

def write_safetensors(path, tensors, meta):
    """Written to a temporary file, then renamed: no half-written checkpoint."""
    header, offset = {}, 0
    for name, a in tensors.items():
        n = a.size * 4
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for a in tensors.values():
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def config_meta(cfg):
    """The ddpm.* metadata keys of src/checkpoint.c."""
    return {"ddpm.config": cfg["name"], "ddpm.ch": str(cfg["ch"]),
            "ddpm.ch-mult": ",".join(map(str, cfg["ch_mult"])),
            "ddpm.num-res-blocks": str(cfg["num_res_blocks"]),
            "ddpm.attn": ",".join(map(str, cfg["attn"])) or "none",
            "ddpm.dropout": "%.9g" % cfg["dropout"], "ddpm.in-ch": str(cfg["in_ch"]),
            "ddpm.out-ch": str(cfg["out_ch"]), "ddpm.resolution": str(cfg["resolution"]),
            "ddpm.groups": str(cfg["groups"])}


# ---- the command --------------------------------------------------------------

def parse_list(s):
    if s == "none":
        return ()
    try:
        v = tuple(int(x) for x in s.split(","))
    except ValueError:
        v = ()
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"'{s}' is not a list of whole numbers like 1,2,2")
    return v


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help=".ckpt/.pt/.pth/.bin (torch.load) or .safetensors")
    p.add_argument("--out", help="the safetensors file to write")
    p.add_argument("--list", action="store_true", help="print layout, config and names only")
    p.add_argument("--key", help="the entry holding the state_dict (state_dict, model, ema)")
    p.add_argument("--config", choices=PRESETS, help="expect this network (else inferred)")
    p.add_argument("--ch", type=int)
    p.add_argument("--ch-mult", type=parse_list)
    p.add_argument("--num-res-blocks", type=int)
    p.add_argument("--attn", type=parse_list, help="resolutions with attention, or none")
    p.add_argument("--dropout", type=float, help="stored for training (the preset's, else 0)")
    p.add_argument("--resolution", type=int, default=32, help="image size (32)")
    p.add_argument("--groups", type=int, default=32, help="GroupNorm groups (32)")
    p.add_argument("--trained-on", help="the data set's name, stored as train.data (the "
                   "figures' labels)")
    p.add_argument("--diffusers-config", help="diffusers' config.json (default: the one "
                   "next to the input, if any)")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="let torch.load run a pickle that holds more than tensors")
    a = p.parse_args(argv)
    if not a.out and not a.list:
        p.error("--out is required (or --list)")
    try:
        sd = read_checkpoint(a.input, a.key, a.unsafe_pickle)
        if not sd:
            raise BadCheckpoint(f"{a.input}: holds no tensors")
        layout = detect_layout(sd, a.input)
        inferred = infer_config(sd, layout, a.input, a.resolution)
        if a.config:
            cfg = dict(PRESETS[a.config], in_ch=3, out_ch=3, resolution=a.resolution)
        else:
            cfg = dict(inferred)
        for k in ("ch", "ch_mult", "num_res_blocks", "attn"):
            if getattr(a, k) is not None:
                cfg[k] = getattr(a, k)
        cfg["groups"] = a.groups
        if any(cfg["ch"] * m % a.groups for m in (1,) + tuple(cfg["ch_mult"])):
            raise BadCheckpoint(f"{a.input}: {a.groups} GroupNorm groups do not divide "
                               f"the widths of {describe(cfg)}; pass --groups")
        cfg["name"] = preset_name(cfg)   # tiny, small, paper, or imported
        cfg["dropout"] = a.dropout if a.dropout is not None else \
            PRESETS.get(cfg["name"], {}).get("dropout", 0.0)
        dconf = a.diffusers_config
        if not dconf and layout == "diffusers":
            near = os.path.join(os.path.dirname(os.path.abspath(a.input)), "config.json")
            dconf = near if os.path.exists(near) else None
        if dconf:
            check_diffusers_config(dconf, cfg)
        tensors = convert(sd, layout, cfg, a.input)
    except BadCheckpoint as e:
        print(f"import_weights: {e}", file=sys.stderr)
        return 1
    n = sum(v.size for v in tensors.values())
    print(f"{a.input}: {layout} names, {len(tensors)} tensors, {n} parameters; "
          f"config {cfg['name']} ({describe(cfg)}, {cfg['resolution']}x{cfg['resolution']})"
          + (f"; checked against {dconf}" if dconf else ""))
    if a.list:
        L = len(cfg["ch_mult"])
        for name, shape in network_tensors(cfg):
            print(f"  {name:34s} {str(list(shape)):20s} <- {lookup(sd, layout, name, L)}")
        return 0
    meta = config_meta(cfg)
    meta["ddpm.imported-from"] = os.path.basename(a.input) + " (" + layout + " names)"
    if a.trained_on:
        meta["train.data"] = a.trained_on
    write_safetensors(a.out, tensors, meta)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
