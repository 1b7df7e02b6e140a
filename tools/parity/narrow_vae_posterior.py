#!/usr/bin/env python3
"""Gives a random-weight checkpoint's VAE the narrow posterior of a trained one, in place.

    python3 tools/parity/narrow_vae_posterior.py CKPT [CKPT ...]

ComfyUI's VAEEncode *samples* the posterior (comfy/ldm/models/autoencoder.py DiagonalGaussianRegularizer,
sample=True: mean + exp(logvar / 2) · randn from torch's global generator), where netdist takes its mean. For a
trained VAE the two agree (SD's posterior std is far below one 8-bit level after decoding), but the random VAE
of .peer/harness/make_checkpoint.py has logvar ~ N(0, 1): its std (~1.1) is larger than the spread of its means
(~0.4), so every encode in ComfyUI is a different random latent and img2img/inpaint/USDU comparisons measure
that noise (seen on the CPU reference: two encodes of one picture differ by 5.9 in latent units). This sets the
logvar half of `first_stage_model.quant_conv` (output channels C..2C) to weight 0 and bias -30, ComfyUI's clamp
floor: std = exp(-15) ≈ 3e-7, so ComfyUI's sample equals the mean to float precision and both programs read
the same file. The means and the decoder are untouched. The bytes are rewritten where they lie (no copy of a
multi-GB file); a file without that tensor is left alone and named.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
BF16 = "BF16"


def patch(path):
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        done = []
        for name in ("first_stage_model.quant_conv.weight", "first_stage_model.quant_conv.bias"):
            meta = header.get(name)
            if meta is None:
                continue
            b, e = meta["data_offsets"]
            f.seek(base + b)
            raw = f.read(e - b)
            if meta["dtype"] == BF16:
                vals = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).copy()
            else:
                vals = np.frombuffer(raw, DTYPES[meta["dtype"]]).astype(np.float32).copy()
            shape = meta["shape"]
            vals = vals.reshape(shape)
            half = shape[0] // 2
            vals[half:] = 0.0 if name.endswith("weight") else -30.0
            if meta["dtype"] == BF16:
                out = (vals.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
            else:
                out = vals.astype(DTYPES[meta["dtype"]]).tobytes()
            f.seek(base + b)
            f.write(out)
            done.append(name)
    if len(done) != 2:
        print(f"narrow_vae_posterior: {path}: no first_stage_model.quant_conv weight and bias; left alone")
        return False
    print(f"narrow_vae_posterior: {path}: VAE posterior logvar set to -30 (std 3e-7)")
    return True


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ok = all([patch(p) for p in sys.argv[1:]])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
