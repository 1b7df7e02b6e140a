#!/usr/bin/env python3
"""Reference data for src/engine/upscale/upscale_parity_test.cpp (netdist_parity_tests, ParityUpscale.*):
random-weight upscale models of real sizes built with spandrel's own classes, saved as .safetensors, and what
ComfyUI's UpscaleModelLoader + ImageUpscaleWithModel nodes make of one image larger than a tile.

    python3 tools/parity/upscale_reference.py --peer .peer --out DIR

Runs on the GPU machine; ComfyUI and spandrel come from the .peer tree laid out by ../shared/peer/prepare.sh
(spandrel's source is .peer/pylib/spandrel; nothing is copied into this repository). Writes into DIR:
  <case>.safetensors        the model (cases below; the new-layout ones renamed as BasicSR/Real-ESRGAN save them)
  input.safetensors         "image" [1, 601, 703, 3] float32 in [0, 1] (4 tiles of 512 with overlap 32)
  ref_<case>.safetensors    "image": ImageUpscaleWithModel's output, float32 [1, 601·s, 703·s, 3]
Cases: esrgan_old_x4 (RRDBNet 64 filters, 23 blocks, old keys), esrgan_new_x4 (the same weights, new keys),
realesrgan_x2 (RRDBNet with pixel-unshuffle 2, new keys, as RealESRGAN_x2plus), compact_x4 (SRVGGNetCompact
64 features, 32 convs, as realesr-general-x4v3). Weights: normal / sqrt(fan-in), the last conv scaled so most
outputs stay inside (0, 1) (the script prints the fraction that does, so the comparison is not of clamped 0s
and 1s).
"""
import argparse
import json
import math
import os
import re
import sys


def randomize(model, seed, last_gain):
    import torch
    g = torch.Generator().manual_seed(seed)
    convs = [n for n, p in model.named_parameters() if p.dim() == 4]
    for name, p in model.named_parameters():
        if p.dim() == 4:
            p.data = torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel())
            if name == convs[-1]:
                p.data *= last_gain
        elif name.endswith("weight"):  # PReLU slopes
            p.data = torch.full(p.shape, 0.1)
        else:
            p.data = torch.randn(p.shape, generator=g) * 0.02
    return model


def esrgan_to_new_layout(sd, num_blocks, upsamples):
    """spandrel's ESRGAN old key layout → the BasicSR/Real-ESRGAN one (conv_first, body.N.rdbK.convJ, ...)."""
    hr, last, out = 3 * upsamples + 2, 3 * upsamples + 4, {}
    for k, v in sd.items():
        tail = k.rsplit(".", 1)[1]
        m = re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", k)
        if k.startswith("model.0."):
            nk = "conv_first." + tail
        elif k.startswith(f"model.1.sub.{num_blocks}."):
            nk = "conv_body." + tail
        elif m:
            nk = f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"
        elif k.startswith(f"model.{hr}."):
            nk = "conv_hr." + tail
        elif k.startswith(f"model.{last}."):
            nk = "conv_last." + tail
        else:
            nk = f"conv_up{int(k.split('.')[1]) // 3}.{tail}"
        out[nk] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", default="esrgan_old_x4,esrgan_new_x4,realesrgan_x2,compact_x4")
    a = ap.parse_args()

    comfy_dir = os.path.abspath(os.path.join(a.peer, "ComfyUI"))
    pylib = os.path.abspath(os.path.join(a.peer, "pylib"))
    sys.path[:0] = [comfy_dir, pylib]
    import peer_compat
    peer_compat.apply(comfy_dir=comfy_dir)
    sys.argv = ["main.py", "--disable-all-custom-nodes"]
    import comfy.options
    comfy.options.enable_args_parsing()
    import torch
    from safetensors.torch import save_file
    import folder_paths
    import spandrel
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.Compact import Compact
    from comfy_extras.nodes_upscale_model import UpscaleModelLoader, ImageUpscaleWithModel

    os.makedirs(a.out, exist_ok=True)
    folder_paths.add_model_folder_path("upscale_models", os.path.abspath(a.out))
    with torch.no_grad():
        old = randomize(ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4), 1, 0.2).state_dict()
        x2 = randomize(ESRGAN(in_nc=12, out_nc=3, num_filters=64, num_blocks=23, scale=4, shuffle_factor=2), 2,
                       0.2).state_dict()
        compact = randomize(Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4), 3,
                            0.1).state_dict()
    for name in ("model.10.bias",):  # ESRGAN's last conv: centre the outputs in [0, 1]
        old[name] = old[name] + 0.5
        x2[name] = x2[name] + 0.5
    models = {"esrgan_old_x4": old, "esrgan_new_x4": esrgan_to_new_layout(old, 23, 2),
              "realesrgan_x2": esrgan_to_new_layout(x2, 23, 2), "compact_x4": compact}
    image = torch.rand([1, 601, 703, 3], generator=torch.Generator().manual_seed(4))
    save_file({"image": image}, os.path.join(a.out, "input.safetensors"))
    summary = {"torch": torch.__version__, "spandrel": getattr(spandrel, "__version__", "?"),
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
               "cudnn_tf32": torch.backends.cudnn.allow_tf32, "matmul_tf32": torch.backends.cuda.matmul.allow_tf32}
    for case in [c for c in a.cases.split(",") if c]:
        file = case + ".safetensors"
        save_file({k: v.contiguous() for k, v in models[case].items()}, os.path.join(a.out, file))
        (model,) = UpscaleModelLoader().load_model(file)
        (out,) = ImageUpscaleWithModel().upscale(model, image)
        out = out.float().cpu().contiguous()
        save_file({"image": out}, os.path.join(a.out, "ref_" + file))
        inside = ((out > 0) & (out < 1)).float().mean().item()
        summary[case] = {"architecture": model.architecture.id, "scale": model.scale, "tags": model.tags,
                         "shape": list(out.shape), "fraction_inside_0_1": round(inside, 4)}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
