"""Random-weight diffusion-model files of the REAL SD3 Medium, SD3.5 Medium, SD3.5 Large, Flux dev and Flux
schnell transformers, built with the pinned ComfyUI's own classes, in the layout UNETLoader reads
(models/diffusion_models/: ComfyUI's names, no prefix), for GPU parity and benchmark runs.

    python3 tools/parity/make_dit_checkpoint.py --family sd3|sd35m|sd35l|flux-dev|flux-schnell --out FILE
        [--dtype fp16|bf16|fp8_e4m3fn|fp8_e5m2] [--seed N] [--peer .peer] [--device cuda|cpu] [--no-verify]

The model is comfy.supported_models.SD3 / Flux / FluxSchnell's BaseModel built from the unet_config that
comfy/model_detection.py detects for the released files (tools/parity/dit_goldens.py MMDIT_REAL / FLUX_REAL),
one parameter at a time filled from its own generator seeded by (--seed, name): linear and conv weights
N(0, 1/fan_in), norm scales 1 + N(0, 0.02²), biases N(0, 0.01²), pos_embed N(0, 0.02²). fp8 files store the
weights as float8 (torch ≥ 2.1) as ComfyUI's fp8 releases do (norm scales and biases stay bf16).
Verification (unless --no-verify): the file is reopened and comfy.model_detection.model_config_from_unet must
return the family's config class with the same unet_config. The disk of the GPU machine is 64 GB: SD3.5 Large
fp16 is ~16 GB, Flux fp16 ~24 GB; build one family at a time.
"""
import argparse
import hashlib
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dit_goldens import MMDIT_REAL, FLUX_REAL  # noqa: E402

FAMILIES = {
    "sd3": ("SD3", MMDIT_REAL["sd3"]),
    "sd35m": ("SD3", MMDIT_REAL["sd35m"]),
    "sd35l": ("SD3", MMDIT_REAL["sd35l"]),
    "flux-dev": ("Flux", FLUX_REAL["flux_dev"]),
    "flux-schnell": ("FluxSchnell", FLUX_REAL["flux_schnell"]),
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp8_e4m3fn": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}


def fill(name, shape, seed):
    g = torch.Generator().manual_seed((int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) + seed) % 2**63)
    if name.endswith(".scale") or name.endswith("ln_q.weight") or name.endswith("ln_k.weight"):
        return 1.0 + torch.randn(shape, generator=g) * 0.02
    if name.endswith(".bias"):
        return torch.randn(shape, generator=g) * 0.01
    if name == "pos_embed":
        return torch.randn(shape, generator=g) * 0.02
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return torch.randn(shape, generator=g) / math.sqrt(fan_in)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    peer = os.path.abspath(args.peer)
    sys.path[:0] = [os.path.join(peer, "ComfyUI"), os.path.join(peer, "pylib")]
    import comfy.model_detection
    import comfy.supported_models as sm
    import comfy.utils
    from safetensors.torch import save_file

    cls, cfg = FAMILIES[args.family]
    uc = dict(cfg, image_model="flux") if cls.startswith("Flux") else dict(cfg)
    mc = getattr(sm, cls)(uc)
    mc.set_inference_dtype(torch.bfloat16 if cls.startswith("Flux") else torch.float16, None)
    with torch.device("meta"):
        model = mc.get_model({})
    shapes = {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()}
    store = DTYPES[args.dtype]
    out = {}
    for name, shape in shapes.items():
        t = fill(name, shape, args.seed)
        if isinstance(store, str):
            is_matrix = len(shape) >= 2 and name != "pos_embed"
            t = t.to(getattr(torch, store)) if is_matrix else t.to(torch.bfloat16)
        else:
            t = t.to(store)
        out[name] = t.contiguous()
    save_file(out, args.out, metadata={"netdist.family": args.family, "netdist.seed": str(args.seed)})
    print(f"{args.out}: {len(out)} tensors, {sum(t.numel() for t in out.values()) / 1e9:.2f} G parameters")
    if args.no_verify:
        return
    sd = comfy.utils.load_torch_file(args.out)
    found = comfy.model_detection.model_config_from_unet(sd, "")
    assert found is not None and type(found).__name__ == cls, f"ComfyUI detects {type(found).__name__}, not {cls}"
    for k, v in cfg.items():
        if k in found.unet_config and k != "context_embedder_config":
            got = found.unet_config[k]
            same = got == v or (isinstance(v, list) and sorted(got) == sorted(v))
            assert same, (k, got, v)
    print("verified: ComfyUI detects", cls)


if __name__ == "__main__":
    main()
