#!/usr/bin/env python3
"""Dump the parameter names and shapes of ComfyUI's UNetModel / AutoencoderKL for SD1.5, SD2, SDXL.

Golden data for src/engine/unet/unet_config_test.cpp and src/engine/vae/vae_test.cpp: every line is
"<name> <d0>x<d1>x..." (names without the checkpoint prefix), sorted by name. The models are built on the
meta device, so nothing is allocated. Needs torch >= 2.0 and einops, and a ComfyUI checkout:

    python3 tools/parity/dump_keys.py --comfyui .peer/ComfyUI --out tests/data/keys
"""
import argparse
import os
import sys


def unet_configs():
    # Exactly the dicts ComfyUI's detect_unet_config + supported_models produce for these checkpoints.
    sd15 = dict(in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
                channel_mult=[1, 2, 4, 4], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1,
                use_linear_in_transformer=False, context_dim=768, num_heads=8, num_head_channels=-1,
                adm_in_channels=None)
    sd2 = dict(sd15, use_linear_in_transformer=True, context_dim=1024, num_heads=-1, num_head_channels=64)
    sdxl = dict(in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2],
                channel_mult=[1, 2, 4], transformer_depth=[0, 0, 2, 2, 10, 10],
                transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], transformer_depth_middle=10,
                use_linear_in_transformer=True, context_dim=2048, num_heads=-1, num_head_channels=64,
                adm_in_channels=2816, num_classes="sequential")
    return {"sd15_unet": sd15, "sd2_unet": sd2, "sdxl_unet": sdxl}


def write(path, module):
    lines = []
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        lines.append("{} {}".format(name, "x".join(str(d) for d in t.shape)))
    lines.sort()
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("{}: {} tensors".format(path, len(lines)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.comfyui))
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.ldm.models.autoencoder import AutoencoderKL

    os.makedirs(args.out, exist_ok=True)
    with torch.device("meta"):
        for name, cfg in unet_configs().items():
            model = UNetModel(use_checkpoint=False, image_size=32, use_spatial_transformer=True, legacy=False,
                              dtype=torch.float32, **cfg)
            write(os.path.join(args.out, name + ".txt"), model)
        ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                    "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [],
                    "dropout": 0.0}
        write(os.path.join(args.out, "sd_vae.txt"), AutoencoderKL(ddconfig=ddconfig, embed_dim=4))


if __name__ == "__main__":
    main()
