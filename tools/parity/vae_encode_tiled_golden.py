"""Goldens for VAEEncodeTiled (src/engine/vae_encode_tiled_test.cpp), made by the pinned ComfyUI's own code on
this machine's CPU torch (tools/parity/cpu/cpu_comfy.py):

    python3 tools/parity/vae_encode_tiled_golden.py [--peer /work/main/.peer] [--out tests/data/vae_tiles]

The embedded tiny model's VAE (the first_stage_model.* tensors of models/tiny-emoji.safetensors, float16 in
the file, run in float32) in comfy.sd.VAE: ComfyUI cannot detect this VAE's size from its keys (it assumes
ch 128, mult 1,2,4,4), so the VAE gets the tiny model's ddconfig (models/README.md: ch 32, mult 1,2,2,4, one
res block, z 4) as config=. Then nodes.VAEEncodeTiled().encode(vae, pixels, tile_size, overlap) for each case
below, with the AutoencoderKL's DiagonalGaussianRegularizer set to sample=False: netdist's VAE encode returns
the distribution's mode (engine/vae/vae.h; ComfyUI adds std·N(0,1) from the global RNG).
Writes vae_encode_tiled.safetensors: `pixels` [2, 203, 165, 3] (a seeded random image in [0, 1]; the odd
sides test the crop to whole latent cells) and `latent_T_O` [2, 4, 25, 20] for each (tile_size T, overlap O).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = [(128, 32), (64, 16), (512, 64), (64, 0)]


def read_vae(path, prefix, torch):
    """The float16/float32 tensors under `prefix` (the UNet's float8 ones are skipped: torch 1.13 has no float8)."""
    import json
    import struct
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    dtypes = {"F16": torch.float16, "F32": torch.float32}
    out = {}
    for k, meta in header.items():
        if not k.startswith(prefix):
            continue
        b, e = meta["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + e])
        t = torch.frombuffer(raw, dtype=dtypes[meta["dtype"]]) if raw else torch.empty(0, dtype=dtypes[meta["dtype"]])
        out[k[len(prefix):]] = t.reshape(meta["shape"]).float()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=os.path.join(ROOT, ".peer"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "vae_tiles"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "cpu"))
    import cpu_comfy
    cpu_comfy.setup(a.peer)
    import torch
    import comfy.sd
    import comfy.utils
    import nodes
    from safetensors.torch import save_file

    prefix = "first_stage_model."
    sd = read_vae(os.path.join(ROOT, "models", "tiny-emoji.safetensors"), prefix, torch)
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 2, 2, 4], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    vae = comfy.sd.VAE(sd=sd, config={"params": {"ddconfig": ddconfig, "embed_dim": 4}}, dtype=torch.float32)
    vae.first_stage_model.regularization.sample = False
    assert vae.vae_dtype == torch.float32, vae.vae_dtype

    g = torch.Generator().manual_seed(18)
    pixels = torch.rand((2, 203, 165, 3), generator=g, dtype=torch.float32)
    # Smooth structure on top of the noise, so that the tiles' latents differ from tile to tile.
    yy = torch.linspace(0, 1, 203).view(1, 203, 1, 1)
    xx = torch.linspace(0, 1, 165).view(1, 1, 165, 1)
    pixels = (0.5 * pixels + 0.25 * (yy + xx)).clamp(0, 1).contiguous()
    out = {"pixels": pixels}
    with torch.inference_mode():
        for t, o in CASES:
            (lat,) = nodes.VAEEncodeTiled().encode(vae, pixels, t, o)
            out["latent_%d_%d" % (t, o)] = lat["samples"].float().contiguous()
            print("tile %d overlap %d: %s mean %.5f" % (t, o, tuple(lat["samples"].shape), lat["samples"].mean()))
        out["latent_whole"] = vae.encode(pixels).float().contiguous()
    os.makedirs(a.out, exist_ok=True)
    save_file(out, os.path.join(a.out, "vae_encode_tiled.safetensors"))


if __name__ == "__main__":
    main()
