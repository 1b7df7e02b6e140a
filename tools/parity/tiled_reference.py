#!/usr/bin/env python3
"""TiledDiffusion reference from the real custom node in ComfyUI, for `parity_check --tiled`.

    python3 tools/parity/tiled_reference.py --peer .peer --ckpt CKPT --out ref_tiles.safetensors \
        [--precision fp16|fp32] [--width 768] [--height 512] [--tile 384] [--overlap 64] [--batch 4] [--steps 20]

Runs on the GPU machine. The node (shiimizu/ComfyUI-TiledDiffusion, laid out by ../shared/peer/prepare.sh in
PEER/custom_nodes/ComfyUI-TiledDiffusion, never copied into this repository) is copied into the pinned
ComfyUI's custom_nodes/ and loaded with ComfyUI's own nodes.load_custom_node. For each method (MultiDiffusion,
Mixture of Diffusers) it applies the node's TiledDiffusion.apply to the checkpoint's MODEL and writes:

  te.cond, te.uncond [1,77,D]             CLIPTextEncode of the prompts (netdist compares its own too)
  in.x [1,4,h,w], in.sigma [1]            fixed inputs (CPU randn, seed 1; sigma 7)
  tiled.<m>.denoised [1,4,h,w]            one call of the node's wrapper around apply_model (cond only), so the
                                          row measures grid, crops, batching and blend on the real UNet
  tiled.<m>.latent, tiled.<m>.image       KSampler (euler/normal, cfg, steps) on an empty latent + VAE decode
<m> is "multidiffusion" or "mixture". Metadata: the settings, torch version, device name, dtypes.
"""
import argparse
import json
import os
import shutil
import sys

PROMPT = "a photograph of an astronaut riding a horse, (detailed:1.2), 4k"
NEGATIVE = "blurry, low quality"
METHODS = [("MultiDiffusion", "multidiffusion"), ("Mixture of Diffusers", "mixture")]


def load_tiled_diffusion(peer, comfy_dir):
    src = os.path.join(peer, "custom_nodes", "ComfyUI-TiledDiffusion")
    if not os.path.isfile(os.path.join(src, "tiled_diffusion.py")):
        sys.exit(f"tiled_reference: {src}/tiled_diffusion.py not found (lay out the peer with prepare.sh)")
    dst = os.path.join(comfy_dir, "custom_nodes", "ComfyUI-TiledDiffusion")
    if not os.path.isdir(dst):
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git"))
    import nodes
    if not nodes.load_custom_node(dst):
        sys.exit(f"tiled_reference: ComfyUI could not load {dst}")
    return nodes.NODE_CLASS_MAPPINGS["TiledDiffusion"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--tile", type=int, default=384)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--cfg", type=float, default=7.0)
    a = ap.parse_args()

    peer = os.path.abspath(a.peer)
    comfy_dir = os.path.join(peer, "ComfyUI")
    sys.path[:0] = [comfy_dir, os.path.join(peer, "pylib")]
    import peer_compat
    peer_compat.apply(comfy_dir=comfy_dir)
    argv = ["main.py", "--disable-all-custom-nodes"]
    if a.precision == "fp32":
        argv += ["--force-fp32", "--fp32-vae"]
    sys.argv = argv
    import comfy.options
    comfy.options.enable_args_parsing()
    import torch
    from safetensors.torch import save_file
    import comfy.sd
    import comfy.model_management as mm
    import nodes

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tiled_node = load_tiled_diffusion(peer, comfy_dir)
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(a.ckpt, output_vae=True, output_clip=True)
    cond, _ = clip.encode_from_tokens(clip.tokenize(PROMPT), return_pooled=True)
    uncond, _ = clip.encode_from_tokens(clip.tokenize(NEGATIVE), return_pooled=True)
    out = {"te.cond": cond.float().cpu(), "te.uncond": uncond.float().cpu()}
    h, w = a.height // 8, a.width // 8
    x = torch.randn([1, 4, h, w], generator=torch.manual_seed(1))
    sigma = torch.tensor([7.0])
    out["in.x"], out["in.sigma"] = x, sigma

    pos, neg = [[cond, {}]], [[uncond, {}]]
    empty = {"samples": torch.zeros([1, 4, h, w])}
    for method, key in METHODS:
        (tiled,) = tiled_node().apply(model, method, a.tile, a.tile, a.overlap, a.batch)
        mm.load_models_gpu([tiled])
        dev = mm.get_torch_device()
        wrapper = tiled.model_options["model_function_wrapper"]
        with torch.no_grad():
            args = {"input": x.to(dev), "timestep": sigma.to(dev), "c": {"c_crossattn": cond.to(dev)},
                    "cond_or_uncond": [0]}
            out[f"tiled.{key}.denoised"] = wrapper(tiled.model.apply_model, args).float().cpu()
        (res,) = nodes.common_ksampler(tiled, a.seed, a.steps, a.cfg, "euler", "normal", pos, neg, empty)
        out[f"tiled.{key}.latent"] = res["samples"].float().cpu()
        out[f"tiled.{key}.image"] = vae.decode(res["samples"]).float().cpu()

    meta = {"prompt": PROMPT, "negative": NEGATIVE, "seed": str(a.seed), "steps": str(a.steps), "cfg": str(a.cfg),
            "width": str(a.width), "height": str(a.height), "tile": str(a.tile), "overlap": str(a.overlap),
            "batch": str(a.batch), "precision": a.precision, "methods": json.dumps(METHODS),
            "torch": torch.__version__, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "unet_dtype": str(model.model.get_dtype()), "vae_dtype": str(vae.vae_dtype)}
    save_file({k: v.contiguous() for k, v in out.items()}, a.out, metadata=meta)
    print(json.dumps({k: list(v.shape) for k, v in out.items()}))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
