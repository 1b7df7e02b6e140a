#!/usr/bin/env python3
"""VAEEncodeTiled parity at real size: the pinned ComfyUI's node classes against `netdist run`.

    python3 tools/parity/vae_encode_tiled_reference.py --peer .peer --ckpt CKPT --out DIR [--width 1024] [--height 768]
    python3 tools/parity/vae_encode_tiled_reference.py --compare DIR     (after netdist ran DIR/CASE.json)

Runs on the GPU machine (tests/parity/run_gpu_parity.sh, step `vae_encode_tiled`). Reference mode writes into
DIR: input/vet_in.png (the usdu step's test picture at WIDTH×HEIGHT), models/checkpoints/<ckpt> (a link), for
each case CASE.json (LoadImage → VAEEncodeTiled (tile_size, overlap) → VAEDecode → SaveImage, the API workflow
netdist runs) and ref_CASE.png (ComfyUI's nodes.VAEEncodeTiled then nodes.VAEDecode on the checkpoint's VAE,
saved as SaveImage saves it), and cases.txt. ComfyUI's AutoencoderKL draws mean + std·N(0,1) when encoding;
netdist encodes the mode, so the reference sets the regulariser's sample=False (the CPU golden does the same,
tools/parity/vae_encode_tiled_golden.py). Compare mode prints one tab-separated row per case:
"vae_encode_tiled: CASE", pass|FAIL, the mean and largest |difference| in 8-bit levels, and the bound (mean ≤ 1.5
levels, ≥ 99% of values within 8, as the usdu rows).
"""
import argparse
import json
import os
import sys

CASES = {"t512_o64": (512, 64), "t256_o32": (256, 32)}


def workflow(ckpt_name, tile, overlap, prefix):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "vet_in.png"}},
        "3": {"class_type": "VAEEncodeTiled", "inputs": {"pixels": ["2", 0], "vae": ["1", 2], "tile_size": tile,
                                                         "overlap": overlap, "temporal_size": 64,
                                                         "temporal_overlap": 8}},
        "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": prefix}},
    }


def reference(a):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from usdu_reference import test_picture
    os.makedirs(os.path.join(a.out, "input"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "models", "checkpoints"), exist_ok=True)
    link = os.path.join(a.out, "models", "checkpoints", os.path.basename(a.ckpt))
    if not os.path.exists(link):
        os.symlink(os.path.abspath(a.ckpt), link)
    test_picture(max(a.width, a.height)).crop((0, 0, a.width, a.height)).save(os.path.join(a.out, "input", "vet_in.png"))

    comfy_dir = os.path.abspath(os.path.join(a.peer, "ComfyUI"))
    sys.path[:0] = [comfy_dir, os.path.abspath(os.path.join(a.peer, "pylib"))]
    import peer_compat
    peer_compat.apply(comfy_dir=comfy_dir)
    sys.argv = ["main.py", "--disable-all-custom-nodes"]
    import comfy.options
    comfy.options.enable_args_parsing()
    import numpy as np
    import torch
    from PIL import Image
    import comfy.sd
    import nodes

    _, _, vae, _ = comfy.sd.load_checkpoint_guess_config(a.ckpt, output_vae=True, output_clip=False)
    vae.first_stage_model.regularization.sample = False
    pixels = Image.open(os.path.join(a.out, "input", "vet_in.png")).convert("RGB")
    image = torch.from_numpy(np.array(pixels).astype(np.float32) / 255.0)[None]
    names = []
    for case, (tile, overlap) in CASES.items():
        with open(os.path.join(a.out, case + ".json"), "w") as f:
            json.dump(workflow(os.path.basename(a.ckpt), tile, overlap, "netdist_" + case), f, indent=1)
        (latent,) = nodes.VAEEncodeTiled().encode(vae, image, tile, overlap)
        (out,) = nodes.VAEDecode().decode(vae, latent)
        arr = np.clip(255.0 * out[0].cpu().numpy(), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(os.path.join(a.out, "ref_" + case + ".png"))
        names.append(case)
        print(f"reference: {case} {list(latent['samples'].shape)} vae dtype {vae.vae_dtype}")
    with open(os.path.join(a.out, "cases.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


def compare(out_dir):
    import numpy as np
    from PIL import Image
    failed = 0
    for case in open(os.path.join(out_dir, "cases.txt")).read().split():
        ref = np.array(Image.open(os.path.join(out_dir, "ref_" + case + ".png")).convert("RGB")).astype(np.int32)
        got_path = os.path.join(out_dir, "netdist", "netdist_" + case + "_00001_.png")
        if not os.path.isfile(got_path):
            print(f"vae_encode_tiled: {case}\tFAIL\tnetdist wrote no {os.path.basename(got_path)}\t-")
            failed += 1
            continue
        got = np.array(Image.open(got_path).convert("RGB")).astype(np.int32)
        if got.shape != ref.shape:
            print(f"vae_encode_tiled: {case}\tFAIL\tshape {got.shape} vs {ref.shape}\t-")
            failed += 1
            continue
        diff = np.abs(got - ref)
        mean, worst, within = float(diff.mean()), int(diff.max()), float((diff <= 8).mean())
        ok = mean <= 1.5 and within >= 0.99
        failed += 0 if ok else 1
        print(f"vae_encode_tiled: {case}\t{'pass' if ok else 'FAIL'}\tmean {mean:.3f}, max {worst}, "
              f"{100 * within:.2f}% within 8\tmean <= 1.5, 99% within 8")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--ckpt")
    ap.add_argument("--out")
    ap.add_argument("--compare")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=768)
    a = ap.parse_args()
    if a.compare:
        sys.exit(compare(a.compare))
    if not a.ckpt or not a.out:
        ap.error("--ckpt and --out are needed (or --compare DIR)")
    reference(a)


if __name__ == "__main__":
    main()
