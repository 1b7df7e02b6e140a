#!/usr/bin/env python3
"""Reference data for src/engine/unet/unet_vae_parity_test.cpp (netdist_parity_tests): ComfyUI's tiny
UNet/VAE, SDXL adm and tiled decode on random weights, CPU fp32. Writes <case>.idx ("config <json>", then
"<name> <d0>x.. <offset>") and <case>.bin (float32, concatenated). Usage: make_unet_vae_reference.py <ComfyUI dir> <out dir>"""
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.abspath(sys.argv[1]))
import torch
import comfy.utils
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel, Timestep
from comfy.ldm.models.autoencoder import AutoencoderKL


def save(name, cfg, tensors):
    off, lines, blobs = 0, ["config " + json.dumps(cfg)], []
    for k, v in tensors.items():
        a = v.detach().float().contiguous().numpy().astype("<f4")
        lines.append("{} {} {}".format(k, "x".join(map(str, a.shape)) or "s", off))
        off += a.size
        blobs.append(a.ravel())
    open(os.path.join(sys.argv[2], name + ".idx"), "w").write("\n".join(lines) + "\n")
    np.concatenate(blobs).tofile(os.path.join(sys.argv[2], name + ".bin"))


def randomize(m):
    for k, p in m.named_parameters():
        p.data = torch.randn(p.shape) * 0.1 + (1.0 if p.dim() == 1 and k.endswith("weight") else 0.0)
    return {"p." + k: p for k, p in m.state_dict().items()}


os.makedirs(sys.argv[2], exist_ok=True)
torch.manual_seed(0)
base = dict(model_channels=32, channel_mult=[1, 2], num_res_blocks=[1, 1], transformer_depth_middle=1)
cases = {"unet_tiny": dict(base, transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1], num_heads=2,
                           num_head_channels=-1, context_dim=32, use_linear_in_transformer=False,
                           adm_in_channels=None),
         "unet_xl": dict(base, transformer_depth=[0, 2], transformer_depth_output=[0, 0, 2, 2], num_heads=-1,
                         num_head_channels=16, context_dim=48, use_linear_in_transformer=True, adm_in_channels=40,
                         num_classes="sequential")}
with torch.no_grad():
    for name, cfg in cases.items():
        m = UNetModel(image_size=32, in_channels=4, out_channels=4, use_spatial_transformer=True, legacy=False, dtype=torch.float32,
                      **cfg)
        t = randomize(m)
        hw = (9, 7) if name == "unet_tiny" else (8, 8)
        t["in.x"], t["in.t"] = torch.randn(2, 4, *hw), torch.tensor([981.5, 3.0])
        t["in.context"] = torch.randn(2, 7, cfg["context_dim"])
        y = torch.randn(2, 40) if cfg["adm_in_channels"] else None
        if y is not None:
            t["in.y"] = y
        t["out"] = m(t["in.x"], t["in.t"], context=t["in.context"], y=y)
        save(name, cfg, t)
    dd = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
          "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    m = AutoencoderKL(ddconfig=dd, embed_dim=4)
    t = randomize(m)
    t["in.image"] = torch.rand(2, 3, 16, 12) * 2 - 1
    t["out.moments"] = m.quant_conv(m.encoder(t["in.image"]))
    z = t["in.z"] = torch.randn(1, 4, 12, 10)
    t["out.decoded"] = m.decode(z)
    f = lambda s: m.decode(s).float()
    ts = lambda tx, ty: comfy.utils.tiled_scale(z, f, tx, ty, 2, upscale_amount=2, output_device="cpu")
    t["out.tiled"] = (ts(4, 16) + ts(16, 4) + ts(8, 8)) / 3.0
    pooled = t["in.pooled"] = torch.randn(2, 1280)
    e = Timestep(256)
    flat = torch.flatten(torch.cat([e(torch.Tensor([v])) for v in [768, 1024, 16, 8, 896, 1152]]))
    t["out.sdxl_adm"] = torch.cat((pooled, flat.unsqueeze(0).repeat(2, 1)), dim=1)
    save("vae_tiny", dd, t)
