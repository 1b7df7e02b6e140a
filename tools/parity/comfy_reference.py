#!/usr/bin/env python3
"""Reference outputs from ComfyUI's own code, for netdist's parity check (tools/parity/parity_check).

    python3 tools/parity/comfy_reference.py --peer .peer --ckpt CKPT --out ref.safetensors \
        [--precision fp32|fp16] [--size 512] [--steps 20] [--seed 42]

Runs on the GPU machine, where torch and transformers exist; ComfyUI is imported from the .peer tree
laid out by ../shared/peer/prepare.sh (never copied into this repository). It writes one safetensors
file with the inputs it used and every component output:

  in.x [1,4,h,w], in.sigma [1], in.latent [1,4,h,w]      fixed inputs (CPU randn, seeds 1 and 2)
  te.cond [1,77,D], te.pooled [1,P]                       CLIPTextEncode of the prompt
  te.uncond                                               CLIPTextEncode of the negative prompt
  unet.denoised [1,4,h,w]                                 one apply_model call (x0 prediction) at in.sigma
  vae.image [1,H,W,3]                                     VAE decode of in.latent
  img.<sampler>_<scheduler> [1,H,W,3]                     KSampler + VAE decode, txt2img
Metadata: prompt, negative, seed, steps, cfg, size, precision, samplers, torch version, device name.
"""
import argparse
import json
import os
import sys

SAMPLERS = [("euler", "normal"), ("euler_ancestral", "normal"), ("dpmpp_2m", "karras"), ("ddim", "ddim_uniform")]
PROMPT = "a photograph of an astronaut riding a horse, (detailed:1.2), 4k"
NEGATIVE = "blurry, low quality"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--samplers", default=",".join(f"{a}/{b}" for a, b in SAMPLERS))
    a = ap.parse_args()

    comfy_dir = os.path.abspath(os.path.join(a.peer, "ComfyUI"))
    pylib = os.path.abspath(os.path.join(a.peer, "pylib"))
    sys.path[:0] = [comfy_dir, pylib]
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
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(a.ckpt, output_vae=True, output_clip=True)
    out = {}

    def encode(text):
        tokens = clip.tokenize(text)
        cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
        return cond, pooled

    cond, pooled = encode(PROMPT)
    uncond, upooled = encode(NEGATIVE)
    out["te.cond"] = cond.float().cpu()
    out["te.uncond"] = uncond.float().cpu()
    if pooled is not None:
        out["te.pooled"] = pooled.float().cpu()
        out["te.upooled"] = upooled.float().cpu()

    h = w = a.size // 8
    x = torch.randn([1, 4, h, w], generator=torch.manual_seed(1))
    latent = torch.randn([1, 4, h, w], generator=torch.manual_seed(2))
    sigma = torch.tensor([7.0])
    out["in.x"], out["in.sigma"], out["in.latent"] = x, sigma, latent

    mm.load_models_gpu([model])
    dev = mm.get_torch_device()
    base = model.model
    with torch.no_grad():
        kwargs = {}
        if hasattr(base, "encode_adm"):
            adm = base.encode_adm(pooled_output=pooled, width=a.size, height=a.size, device=dev)
            if adm is not None:
                kwargs["y"] = adm.to(dev)
                out["unet.y"] = adm.float().cpu()
        den = base.apply_model(x.to(dev), sigma.to(dev), c_crossattn=cond.to(dev), **kwargs)
        out["unet.denoised"] = den.float().cpu()
        out["vae.image"] = vae.decode(latent).float().cpu()

    pos = [[cond, {"pooled_output": pooled}]] if pooled is not None else [[cond, {}]]
    neg = [[uncond, {"pooled_output": upooled}]] if upooled is not None else [[uncond, {}]]
    empty = {"samples": torch.zeros([1, 4, h, w])}
    samplers = [tuple(s.split("/")) for s in a.samplers.split(",") if s]
    for sampler, scheduler in samplers:
        (res,) = nodes.common_ksampler(model, a.seed, a.steps, a.cfg, sampler, scheduler, pos, neg, empty)
        out[f"img.{sampler}_{scheduler}"] = vae.decode(res["samples"]).float().cpu()
        out[f"lat.{sampler}_{scheduler}"] = res["samples"].float().cpu()

    meta = {"prompt": PROMPT, "negative": NEGATIVE, "seed": str(a.seed), "steps": str(a.steps), "cfg": str(a.cfg),
            "size": str(a.size), "precision": a.precision, "samplers": json.dumps(samplers),
            "torch": torch.__version__, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "unet_dtype": str(base.get_dtype()), "vae_dtype": str(vae.vae_dtype)}
    save_file({k: v.contiguous() for k, v in out.items()}, a.out, metadata=meta)
    print(json.dumps({k: list(v.shape) for k, v in out.items()}))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
