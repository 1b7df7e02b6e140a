#!/usr/bin/env python3
"""Ultimate SD Upscale parity: the real custom node in the pinned ComfyUI against `netdist run`.

    python3 tools/parity/usdu_reference.py --peer .peer --ckpt CKPT --out DIR [--size 1024] [--tile 512] [--steps 4]
    python3 tools/parity/usdu_reference.py --compare DIR        (after netdist ran DIR/CASE.json)

Runs on the GPU machine (tests/parity/run_gpu_parity.sh, step `usdu`). Needs the custom node in the peer
folder with its submodule's script: .peer/custom_nodes/ComfyUI_UltimateSDUpscale (ssitu, pinned 34a3c2c0) and
.peer/custom_nodes/ComfyUI_UltimateSDUpscale/repositories/ultimate_sd_upscale/scripts/ultimate-upscale.py
(Coyote-A/ultimate-upscale-for-automatic1111 at 2322caa4). Nothing of either is copied into this repository.

Reference mode writes into DIR: input/usdu_in.png (a SIZE² test picture), models/checkpoints/<ckpt> (a link),
for each case CASE.json (the API workflow netdist runs: LoadImage → UltimateSDUpscaleNoUpscale → SaveImage)
and ref_CASE.png (ComfyUI's output, saved as SaveImage saves it), and cases.txt. ComfyUI runs with its
defaults on the GPU (fp16 UNet, its default VAE dtype), as netdist does with no precision flags.
Compare mode prints one tab-separated row per case for the parity table: "usdu: CASE", pass|FAIL, the mean
and largest |difference| in 8-bit levels, and the bound (mean ≤ 1.5 levels, ≥ 99% of values within 8).
"""
import argparse
import json
import os
import sys

PROMPT = "a photograph of an astronaut riding a horse, detailed"
NEGATIVE = "blurry, low quality"
CASES = {
    "linear_none": ("Linear", "None"),
    "chess_half_tile_intersections": ("Chess", "Half Tile + Intersections"),
    "linear_band_pass": ("Linear", "Band Pass"),
}


def node_inputs(a, mode, seam_fix):
    return {"seed": a.seed, "steps": a.steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 0.3, "mode_type": mode, "tile_width": a.tile, "tile_height": a.tile, "mask_blur": 8,
            "tile_padding": 32, "seam_fix_mode": seam_fix, "seam_fix_denoise": 1.0, "seam_fix_width": 64,
            "seam_fix_mask_blur": 8, "seam_fix_padding": 16, "force_uniform_tiles": True, "tiled_decode": False,
            "batch_size": 1}


def workflow(a, ckpt_name, mode, seam_fix, prefix):
    usdu = {"upscaled_image": ["4", 0], "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
            "vae": ["1", 2]}
    usdu.update(node_inputs(a, mode, seam_fix))
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "usdu_in.png"}},
        "5": {"class_type": "UltimateSDUpscaleNoUpscale", "inputs": usdu},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix}},
    }


def test_picture(size):
    from PIL import Image, ImageDraw
    im = Image.new("RGB", (size, size))
    px = im.load()
    for y in range(size):
        for x in range(size):
            px[x, y] = (x * 255 // size, y * 255 // size, (x + y) * 255 // (2 * size))
    d = ImageDraw.Draw(im)
    for i in range(6):
        r = size // (8 + i)
        cx, cy = size * (i + 1) // 7, size * ((i * 3) % 7 + 1) // 8
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=((i * 70) % 256, (i * 130) % 256, (i * 40 + 90) % 256))
    return im


def reference(a):
    node_dir = os.path.abspath(os.path.join(a.peer, "custom_nodes", "ComfyUI_UltimateSDUpscale"))
    script = os.path.join(node_dir, "repositories", "ultimate_sd_upscale", "scripts", "ultimate-upscale.py")
    if not os.path.isfile(script):
        sys.exit(f"{script} is missing: copy scripts/ultimate-upscale.py of ultimate-upscale-for-automatic1111 "
                 "(2322caa4) there (the node would try to download it)")
    os.makedirs(os.path.join(a.out, "input"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "models", "checkpoints"), exist_ok=True)
    link = os.path.join(a.out, "models", "checkpoints", os.path.basename(a.ckpt))
    if not os.path.exists(link):
        os.symlink(os.path.abspath(a.ckpt), link)
    test_picture(a.size).save(os.path.join(a.out, "input", "usdu_in.png"))

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

    if not nodes.load_custom_node(node_dir):
        sys.exit(f"ComfyUI could not load {node_dir} (see the log above)")
    usdu = nodes.NODE_CLASS_MAPPINGS["UltimateSDUpscaleNoUpscale"]()
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(a.ckpt, output_vae=True, output_clip=True)
    (positive,) = nodes.CLIPTextEncode().encode(clip, PROMPT)
    (negative,) = nodes.CLIPTextEncode().encode(clip, NEGATIVE)
    pixels = Image.open(os.path.join(a.out, "input", "usdu_in.png")).convert("RGB")
    image = torch.from_numpy(np.array(pixels).astype(np.float32) / 255.0)[None]
    names = []
    for case, (mode, seam_fix) in CASES.items():
        with open(os.path.join(a.out, case + ".json"), "w") as f:
            json.dump(workflow(a, os.path.basename(a.ckpt), mode, seam_fix, "netdist_" + case), f, indent=1)
        (out,) = usdu.upscale(upscaled_image=image, model=model, positive=positive, negative=negative, vae=vae,
                              **node_inputs(a, mode, seam_fix))
        arr = np.clip(255.0 * out[0].cpu().numpy(), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(os.path.join(a.out, "ref_" + case + ".png"))
        names.append(case)
        print(f"reference: {case} {list(out.shape)} on {torch.cuda.get_device_name(0)}")
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
            print(f"usdu: {case}\tFAIL\tnetdist wrote no {os.path.basename(got_path)}\t-")
            failed += 1
            continue
        got = np.array(Image.open(got_path).convert("RGB")).astype(np.int32)
        if got.shape != ref.shape:
            print(f"usdu: {case}\tFAIL\tshape {got.shape} vs {ref.shape}\t-")
            failed += 1
            continue
        diff = np.abs(got - ref)
        mean, worst, within = float(diff.mean()), int(diff.max()), float((diff <= 8).mean())
        ok = mean <= 1.5 and within >= 0.99
        failed += 0 if ok else 1
        print(f"usdu: {case}\t{'pass' if ok else 'FAIL'}\tmean {mean:.3f}, max {worst}, {100 * within:.2f}% within 8"
              f"\tmean <= 1.5, 99% within 8")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--ckpt")
    ap.add_argument("--out")
    ap.add_argument("--compare")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--tile", type=int, default=512, help="tile_width and tile_height (the CPU run uses 128)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    if a.compare:
        sys.exit(compare(a.compare))
    if not a.ckpt or not a.out:
        ap.error("--ckpt and --out are needed (or --compare DIR)")
    reference(a)


if __name__ == "__main__":
    import torch
    # ComfyUI's executor runs every node under inference mode; so does this reference (the nodes' tensors
    # would otherwise carry autograd state and some of them call .numpy() on it).
    with torch.inference_mode():
        main()
