"""Dump golden key lists for tests/data/keys/ from ComfyUI's own classes (run where torch is installed).

    python3 tools/parity/dump_keys_family.py --comfy .peer/ComfyUI --out tests/data/keys

Writes, per family (sd15, sdxl):
  <family>_ldm.txt          "name shape" for every tensor of a checkpoint saved by ComfyUI's
                            CheckpointSave path (BaseModel.state_dict_for_saving), shapes as 1x2x3
  <family>_unet_diffusers.txt  "diffusers_name ldm_name" from comfy.utils.unet_to_diffusers, restricted
                            to ldm names that exist in the UNet
Weights are never initialised (ComfyUI's disable_weight_init ops); only names and shapes are read.
"""
import argparse
import os
import sys

UNET_CONFIGS = {
    "sd15": {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
             'legacy': False, 'adm_in_channels': None, 'in_channels': 4, 'model_channels': 320,
             'num_res_blocks': [2, 2, 2, 2], 'transformer_depth': [1, 1, 1, 1, 1, 1, 0, 0],
             'channel_mult': [1, 2, 4, 4], 'transformer_depth_middle': 1, 'use_linear_in_transformer': False,
             'context_dim': 768, 'num_heads': 8,
             'transformer_depth_output': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
             'use_temporal_attention': False, 'use_temporal_resblock': False},
    "sdxl": {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
             'legacy': False, 'num_classes': 'sequential', 'adm_in_channels': 2816, 'in_channels': 4,
             'model_channels': 320, 'num_res_blocks': [2, 2, 2], 'transformer_depth': [0, 0, 2, 2, 10, 10],
             'channel_mult': [1, 2, 4], 'transformer_depth_middle': 10, 'use_linear_in_transformer': True,
             'context_dim': 2048, 'num_head_channels': 64,
             'transformer_depth_output': [0, 0, 0, 2, 2, 2, 10, 10, 10],
             'use_temporal_attention': False, 'use_temporal_resblock': False},
}
CLASS = {"sd15": "SD15", "sdxl": "SDXL"}
VAE_DDCONFIG = {'double_z': True, 'z_channels': 4, 'resolution': 256, 'in_channels': 3, 'out_ch': 3, 'ch': 128,
                'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfy", default=".peer/ComfyUI")
    ap.add_argument("--out", default="tests/data/keys")
    args = ap.parse_args()
    comfy = os.path.abspath(args.comfy)
    pylib = os.path.join(os.path.dirname(comfy), "pylib")
    sys.path[:0] = [comfy, pylib]
    try:
        import peer_compat
        peer_compat.apply(comfy_dir=None)
    except ImportError:
        pass
    import torch
    import comfy.supported_models as sm
    import comfy.utils
    from comfy.ldm.models.autoencoder import AutoencoderKL

    os.makedirs(args.out, exist_ok=True)
    for family, unet_config in UNET_CONFIGS.items():
        cfg = dict(unet_config)
        cfg["dtype"] = torch.float16
        model_config = getattr(sm, CLASS[family])(cfg)
        model_config.set_inference_dtype(torch.float16, None)
        model = model_config.get_model({}, "", device="meta")
        clip = model_config.clip_target().clip(device="meta", dtype=torch.float16)
        with torch.device("meta"):
            vae = AutoencoderKL(ddconfig=dict(VAE_DDCONFIG), embed_dim=4)
        sd = model.state_dict_for_saving(clip.state_dict(), vae.state_dict(), None)
        with open(os.path.join(args.out, f"{family}_ldm.txt"), "w") as f:
            for k in sorted(sd):
                shape = "x".join(str(s) for s in sd[k].shape) or "scalar"
                f.write(f"{k} {shape}\n")
        unet_names = {k[len("model.diffusion_model."):] for k in sd if k.startswith("model.diffusion_model.")}
        dmap = comfy.utils.unet_to_diffusers(unet_config)
        with open(os.path.join(args.out, f"{family}_unet_diffusers.txt"), "w") as f:
            for d in sorted(dmap):
                if dmap[d] in unet_names:
                    f.write(f"{d} {dmap[d]}\n")
        print(family, len(sd), "keys;", len(dmap), "unet diffusers entries")


if __name__ == "__main__":
    main()
