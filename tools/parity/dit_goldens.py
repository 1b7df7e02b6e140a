"""Goldens for netdist's MMDiT (SD3/SD3.5) and Flux transformers, made by the pinned ComfyUI's own classes on
the build machine's CPU torch (tools/parity/cpu/cpu_comfy.py). Run from the repository root:

    python3 tools/parity/dit_goldens.py --peer /work/main/.peer --out tests/data/dit

Per tiny case <name> it writes
  <name>.safetensors     the random weights under ComfyUI's names (a diffusion-model file: no prefix),
                         stored as F16 so each file stays well under 1 MB (both sides compute in fp32 on the
                         upcast values, so the rounding is part of the weights, not an error)
  <name>_io.safetensors  fp32 inputs (x, timesteps, context, y[, guidance]) and ComfyUI's output `out`,
                         one entry per input set (suffix _0, _1: an even and an odd latent size); and
                         ComfyUI's BaseModel.apply_model (the family's model sampling from supported_models:
                         SD3 / Flux / FluxSchnell) on apply_x, apply_sigma, apply_context, apply_y
                         [, apply_guidance] → apply_denoised
vae16.safetensors / vae16_io.safetensors: a tiny 16-channel VAE without quant_conv/post_quant_conv (the SD3 and
Flux VAE layout; ComfyUI's AutoencodingEngine as comfy/sd.py builds it for such files), its encoder moments of
`image` and its decode of `z`; and, for the real configurations, keys_<family>.txt ("name 1x2x3" per line) of models built on the meta
device (names and shapes only), for the key-detection tests.
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

MMDIT_TINY = {
    # depth 1 (hidden 64, one head: MMDiT's head size is always 64) with num_blocks 2 keeps the files under
    # 1 MB; real files have num_blocks == depth, netdist counts joint_blocks.N from the keys either way.
    # SD3 Medium-like: no qk-norm, no extra self-attention.
    "mmdit_sd3": dict(depth=1, num_blocks=2, patch_size=2, in_channels=16, out_channels=16, adm_in_channels=32,
                      context_embedder_config={"target": "torch.nn.Linear",
                                               "params": {"in_features": 48, "out_features": 64}},
                      num_patches=64, pos_embed_max_size=8, qk_norm=None, x_block_self_attn_layers=[]),
    # SD3.5 Medium-like: rms qk-norm and x_block_self_attn in block 0.
    "mmdit_sd35m": dict(depth=1, num_blocks=2, patch_size=2, in_channels=16, out_channels=16, adm_in_channels=32,
                        context_embedder_config={"target": "torch.nn.Linear",
                                                 "params": {"in_features": 48, "out_features": 64}},
                        num_patches=100, pos_embed_max_size=10, qk_norm="rms", x_block_self_attn_layers=[0]),
}
FLUX_TINY = {
    # Flux dev-like (guidance embedding); head dim 32, axes_dim [4, 14, 14] (hd/8, 7hd/16, 7hd/16).
    "flux_dev": dict(in_channels=16, out_channels=16, vec_in_dim=24, context_in_dim=40, hidden_size=64,
                     mlp_ratio=4.0, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[4, 14, 14],
                     theta=10000, patch_size=2, qkv_bias=True, guidance_embed=True),
    # Flux schnell-like: no guidance embedding.
    "flux_schnell": dict(in_channels=16, out_channels=16, vec_in_dim=24, context_in_dim=40, hidden_size=64,
                         mlp_ratio=4.0, num_heads=2, depth=2, depth_single_blocks=1, axes_dim=[4, 14, 14],
                         theta=10000, patch_size=2, qkv_bias=True, guidance_embed=False),
}
# Real sizes (supported_models + model_detection for the released files).
MMDIT_REAL = {
    "sd3": dict(depth=24, patch_size=2, in_channels=16, out_channels=16, adm_in_channels=2048,
                context_embedder_config={"target": "torch.nn.Linear",
                                         "params": {"in_features": 4096, "out_features": 1536}},
                num_patches=36864, pos_embed_max_size=192, qk_norm=None, x_block_self_attn_layers=[]),
    "sd35m": dict(depth=24, patch_size=2, in_channels=16, out_channels=16, adm_in_channels=2048,
                  context_embedder_config={"target": "torch.nn.Linear",
                                           "params": {"in_features": 4096, "out_features": 1536}},
                  num_patches=147456, pos_embed_max_size=384, qk_norm="rms",
                  x_block_self_attn_layers=list(range(13))),
    "sd35l": dict(depth=38, patch_size=2, in_channels=16, out_channels=16, adm_in_channels=2048,
                  context_embedder_config={"target": "torch.nn.Linear",
                                           "params": {"in_features": 4096, "out_features": 2432}},
                  num_patches=36864, pos_embed_max_size=192, qk_norm="rms", x_block_self_attn_layers=[]),
}
FLUX_REAL = {
    "flux_dev": dict(in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=3072,
                     mlp_ratio=4.0, num_heads=24, depth=19, depth_single_blocks=38, axes_dim=[16, 56, 56],
                     theta=10000, patch_size=2, qkv_bias=True, guidance_embed=True),
}
FLUX_REAL["flux_schnell"] = dict(FLUX_REAL["flux_dev"], guidance_embed=False)


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, t in model.state_dict().items():
        v = torch.randn(t.shape, generator=g) * 0.1
        if name == "pos_embed":
            v = torch.randn(t.shape, generator=g) * 0.5
        if name.endswith(".scale") or name.endswith("ln_q.weight") or name.endswith("ln_k.weight"):
            v = 1.0 + v
        sd[name] = v.half().float()  # the stored F16 values are the weights
    model.load_state_dict(sd, strict=True)
    return sd


def apply_golden(cls, cfg, sd, ctx_dim, y_dim, seed, flux):
    """ComfyUI's BaseModel of supported_models class `cls` built on the tiny config: apply_model's denoised."""
    import comfy.supported_models as sm
    uc = dict(cfg, image_model="flux") if flux else dict(cfg)
    mc = getattr(sm, cls)(uc)
    mc.set_inference_dtype(torch.float32, None)
    m = mc.get_model({})
    m.diffusion_model.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(seed)
    io = {"apply_x": torch.randn(2, 16, 8, 6, generator=g), "apply_sigma": torch.tensor([1.0, 0.35]),
          "apply_context": torch.randn(2, 7, ctx_dim, generator=g), "apply_y": torch.randn(2, y_dim, generator=g)}
    kw = {}
    if flux:
        io["apply_guidance"] = torch.tensor([3.5, 3.5])  # model_base.Flux.extra_conds adds it for schnell too
        kw["guidance"] = io["apply_guidance"]
    with torch.no_grad():
        io["apply_denoised"] = m.apply_model(io["apply_x"], io["apply_sigma"], c_crossattn=io["apply_context"],
                                             y=io["apply_y"], **kw)
    return io


def write_keys(path, sd):
    with open(path, "w") as f:
        for name in sorted(sd):
            shape = "x".join(str(d) for d in sd[name].shape) or "scalar"
            f.write(f"{name} {shape}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default="/work/main/.peer")
    ap.add_argument("--out", default="tests/data/dit")
    ap.add_argument("--no-keys", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "cpu"))
    import cpu_comfy
    cpu_comfy.setup(args.peer)
    import comfy.ops
    import comfy.utils
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper
    from comfy.ldm.flux.model import Flux
    from safetensors.torch import save_file
    ops = comfy.ops.disable_weight_init
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)

    for i, (name, cfg) in enumerate(MMDIT_TINY.items()):
        model = OpenAISignatureMMDITWrapper(**cfg, dtype=torch.float32, device="cpu", operations=ops).eval()
        sd = randomize(model, 100 + i)
        save_file({k: v.half() for k, v in sd.items()}, os.path.join(args.out, name + ".safetensors"))
        g = torch.Generator().manual_seed(200 + i)
        io = {}
        for j, (b, h, w) in enumerate([(2, 10, 12), (1, 9, 7)]):
            x = torch.randn(b, 16, h, w, generator=g)
            t = torch.rand(b, generator=g) * 1000.0
            ctx = torch.randn(b, 5, 48, generator=g)
            y = torch.randn(b, 32, generator=g)
            with torch.no_grad():
                out = model(x, t, context=ctx, y=y)
            io.update({f"x_{j}": x, f"timesteps_{j}": t, f"context_{j}": ctx, f"y_{j}": y, f"out_{j}": out})
        io.update(apply_golden("SD3", cfg, sd, 48, 32, 500 + i, False))
        save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(args.out, name + "_io.safetensors"))
        print(name, "written")

    for i, (name, cfg) in enumerate(FLUX_TINY.items()):
        model = Flux(**cfg, dtype=torch.float32, device="cpu", operations=ops).eval()
        sd = randomize(model, 300 + i)
        save_file({k: v.half() for k, v in sd.items()}, os.path.join(args.out, name + ".safetensors"))
        g = torch.Generator().manual_seed(400 + i)
        io = {}
        for j, (b, h, w) in enumerate([(2, 8, 10), (1, 7, 9)]):
            x = torch.randn(b, 16, h, w, generator=g)
            t = torch.rand(b, generator=g)
            ctx = torch.randn(b, 6, 40, generator=g)
            y = torch.randn(b, 24, generator=g)
            guidance = torch.full((b,), 3.5) if cfg["guidance_embed"] else None
            with torch.no_grad():
                out = model(x, t, context=ctx, y=y, guidance=guidance)
            io.update({f"x_{j}": x, f"timesteps_{j}": t, f"context_{j}": ctx, f"y_{j}": y, f"out_{j}": out})
            if guidance is not None:
                io[f"guidance_{j}"] = guidance
        cls = "Flux" if cfg["guidance_embed"] else "FluxSchnell"
        io.update(apply_golden(cls, cfg, sd, 40, 24, 600 + i, True))
        save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(args.out, name + "_io.safetensors"))
        print(name, "written")

    from comfy.ldm.models.autoencoder import AutoencodingEngine
    dd = {"double_z": True, "z_channels": 16, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
          "ch_mult": [1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    vae = AutoencodingEngine(
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder", "params": dd},
        decoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Decoder", "params": dd}).eval()
    sd = randomize(vae, 700)
    save_file({k: v.half() for k, v in sd.items()}, os.path.join(args.out, "vae16.safetensors"))
    g = torch.Generator().manual_seed(701)
    image = torch.rand(1, 3, 16, 12, generator=g) * 2 - 1
    z = torch.randn(1, 16, 6, 8, generator=g)
    with torch.no_grad():
        io = {"image": image, "moments": vae.encoder(image), "z": z, "decoded": vae.decode(z)}
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(args.out, "vae16_io.safetensors"))
    print("vae16 written")

    if args.no_keys:
        return
    for name, cfg in MMDIT_REAL.items():
        model = OpenAISignatureMMDITWrapper(**cfg, dtype=torch.float16, device="meta", operations=ops)
        write_keys(os.path.join(args.out, f"keys_{name}.txt"), model.state_dict())
        print("keys", name)
    for name, cfg in FLUX_REAL.items():
        model = Flux(**cfg, dtype=torch.bfloat16, device="meta", operations=ops)
        write_keys(os.path.join(args.out, f"keys_{name}.txt"), model.state_dict())
        print("keys", name)


if __name__ == "__main__":
    main()
