#!/usr/bin/env python3
"""ControlNet parity: ControlNetLoader, DiffControlNetLoader-free ControlNetApply (chained) and
ControlNetApplyAdvanced (start/end percent, strength) with random-weight SD1.5 and SDXL ControlNets built by the
pinned ComfyUI's own comfy.cldm.cldm.ControlNet, in-process through ComfyUI's node classes, against `netdist run`
of the same API workflows.

    python3 tools/parity/controlnet_reference.py --peer .peer --ckpt SD15 [--sdxl-ckpt SDXL] --out DIR [--size 512]
    python3 tools/parity/controlnet_reference.py --compare DIR        (after netdist ran DIR/CASE.json)

Runs on the GPU machine (tests/parity/run_gpu_parity.sh, step `controlnet`) on the random-weight checkpoints the
sd15/sdxl steps make. Each ControlNet's config is what ComfyUI's load_controlnet detects for a real one: the
checkpoint's UNet config (comfy.model_detection.model_config_from_unet on its diffusion_model keys) with
hint_channels 3; weights N(0, 1/fan_in) from a fixed seed (zero convs too, so the residuals are not zero),
stored fp16 as "control_model."-prefixed (SD1.5 a, "control_model." like the original .pth) or bare (SD1.5 b,
SDXL) ldm keys in DIR/models/controlnet/. The hint is DIR/input/hint.png, a deterministic pattern of another
size and aspect than the latent (resized by ControlNet's nearest-exact centre crop).

Compare mode prints one tab-separated row per case: "controlnet: CASE", pass|FAIL, mean and largest |difference|
in 8-bit levels, and the bound (mean <= 2 levels, docs/parity.md's whole-image bound).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT = "a photograph of an astronaut riding a horse, detailed"
NEGATIVE = "blurry, low quality"
CFG = 7.0
# case: (checkpoint "sd15" or "sdxl", kind, sampler, scheduler)
CASES = {
    "sd15_advanced_range": ("sd15", "advanced", "dpmpp_2m", "karras"),
    "sd15_old_apply_chain": ("sd15", "old_chain", "euler", "normal"),
    "sd15_advanced_batch2": ("sd15", "advanced_batch", "euler_ancestral", "normal"),
    "sdxl_advanced": ("sdxl", "advanced", "euler", "normal"),
}
CN = {"sd15": ("cn_sd15_a.safetensors", "cn_sd15_b.safetensors"), "sdxl": ("cn_sdxl.safetensors",)}


def make_controlnets(ckpt, family, out_dir):
    import torch
    import comfy.cldm.cldm
    import comfy.model_detection
    import comfy.ops
    import comfy.utils
    from safetensors.torch import save_file
    sd = comfy.utils.load_torch_file(ckpt)
    # What load_controlnet_state_dict builds for a ControlNet of this shape: model_config_from_unet's
    # unet_config (heads from the supported model), without out_channels.
    cfg = dict(comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.").unet_config)
    cfg.pop("out_channels", None)
    cfg.pop("dtype", None)
    cfg.pop("device", None)
    cfg.pop("operations", None)
    for seed, name in enumerate(CN[family]):
        net = comfy.cldm.cldm.ControlNet(hint_channels=3, operations=comfy.ops.disable_weight_init,
                                         dtype=torch.float32, device="cpu", **cfg)
        g = torch.Generator().manual_seed(100 + seed)
        state = {}
        for k, v in sorted(net.state_dict().items()):
            r = torch.randn(tuple(v.shape), generator=g)
            fan_in = 1
            for s in v.shape[1:]:
                fan_in *= s
            r = r / fan_in ** 0.5 if v.dim() >= 2 else (r * 0.1 + (1.0 if k.endswith(".weight") else 0.0))
            state[k] = r.half()
        prefix = "control_model." if name.endswith("_a.safetensors") else ""
        save_file({prefix + k: v.contiguous() for k, v in state.items()}, os.path.join(out_dir, name))


def make_hint(path, w, h):
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 7 + y * 3) % 256, ((x // 16 + y // 16) % 2) * 255, (x * y) % 256], -1).astype(np.uint8)
    Image.fromarray(img).save(path)


def workflow(a, ck_name, case, prefix):
    family, kind, sampler, scheduler = CASES[case]
    size = 1024 if family == "sdxl" else a.size
    batch = 2 if kind == "advanced_batch" else 1
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ck_name}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "hint.png"}},
        "5": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CN[family][0]}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": batch}},
    }
    if kind == "old_chain":
        wf["11"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CN[family][1]}}
        wf["12"] = {"class_type": "ControlNetApply",
                    "inputs": {"conditioning": ["2", 0], "control_net": ["5", 0], "image": ["4", 0], "strength": 0.6}}
        wf["13"] = {"class_type": "ControlNetApply",
                    "inputs": {"conditioning": ["12", 0], "control_net": ["11", 0], "image": ["4", 0],
                               "strength": 0.4}}
        pos, neg = ["13", 0], ["3", 0]
    else:
        wf["12"] = {"class_type": "ControlNetApplyAdvanced",
                    "inputs": {"positive": ["2", 0], "negative": ["3", 0], "control_net": ["5", 0],
                               "image": ["4", 0], "strength": 0.9, "start_percent": 0.1, "end_percent": 0.8}}
        pos, neg = ["12", 0], ["12", 1]
    wf["7"] = {"class_type": "KSampler",
               "inputs": {"model": ["1", 0], "seed": a.seed, "steps": a.steps, "cfg": CFG, "sampler_name": sampler,
                          "scheduler": scheduler, "positive": pos, "negative": neg, "latent_image": ["6", 0],
                          "denoise": 1.0}}
    wf["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}
    wf["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": prefix}}
    return wf


def reference(a):
    sys.path.insert(0, HERE)
    from inpaint_reference import run_in_comfy
    ck_dir = os.path.join(a.out, "models", "checkpoints")
    cn_dir = os.path.join(a.out, "models", "controlnet")
    for d in (ck_dir, cn_dir, os.path.join(a.out, "input")):
        os.makedirs(d, exist_ok=True)
    make_hint(os.path.join(a.out, "input", "hint.png"), 600, 440)
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
    import folder_paths
    import nodes
    folder_paths.set_input_directory(os.path.abspath(os.path.join(a.out, "input")))
    folder_paths.add_model_folder_path("controlnet", os.path.abspath(cn_dir))
    ckpts = {"sd15": a.ckpt, "sdxl": a.sdxl_ckpt}
    models = {}
    for family, path in ckpts.items():
        if not path:
            continue
        name = os.path.basename(path)
        link = os.path.join(ck_dir, name)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(path), link)
        make_controlnets(path, family, cn_dir)
        m, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(link, output_vae=True, output_clip=True)
        models[name] = (m, clip, vae)
    names = []
    for case in CASES:
        family = CASES[case][0]
        if not ckpts[family]:
            continue
        wf = workflow(a, os.path.basename(ckpts[family]), case, "netdist_" + case)
        with open(os.path.join(a.out, case + ".json"), "w") as f:
            json.dump(wf, f, indent=1)
        images = run_in_comfy(wf, models, nodes.NODE_CLASS_MAPPINGS)
        for i in range(images.shape[0]):
            arr = np.clip(255.0 * images[i].cpu().numpy(), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(os.path.join(a.out, f"ref_{case}_{i}.png"))
        names.append(f"{case}:{images.shape[0]}")
        print(f"reference: {case} {list(images.shape)} on {torch.cuda.get_device_name(0)}")
    with open(os.path.join(a.out, "cases.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


def compare(out_dir):
    import numpy as np
    from PIL import Image
    failed = 0
    for entry in open(os.path.join(out_dir, "cases.txt")).read().split():
        case, count = entry.split(":")
        for i in range(int(count)):
            ref = np.array(Image.open(os.path.join(out_dir, f"ref_{case}_{i}.png")).convert("RGB")).astype(np.int32)
            got_path = os.path.join(out_dir, "netdist", f"netdist_{case}_{i + 1:05d}_.png")
            if not os.path.isfile(got_path):
                print(f"controlnet: {case} [{i}]\tFAIL\tnetdist wrote no {os.path.basename(got_path)}\t-")
                failed += 1
                continue
            got = np.array(Image.open(got_path).convert("RGB")).astype(np.int32)
            if got.shape != ref.shape:
                print(f"controlnet: {case} [{i}]\tFAIL\tshape {got.shape} vs {ref.shape}\t-")
                failed += 1
                continue
            diff = np.abs(got - ref)
            mean, worst = float(diff.mean()), int(diff.max())
            ok = mean <= 2.0
            failed += 0 if ok else 1
            print(f"controlnet: {case} [{i}]\t{'pass' if ok else 'FAIL'}\tmean {mean:.3f} /255, max {worst}"
                  f"\tmean <= 2 /255")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--ckpt")
    ap.add_argument("--sdxl-ckpt")
    ap.add_argument("--out")
    ap.add_argument("--compare")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    if a.compare:
        sys.exit(compare(a.compare))
    if not a.ckpt or not a.out:
        ap.error("--ckpt and --out are needed (or --compare DIR)")
    import torch
    with torch.inference_mode():
        reference(a)


if __name__ == "__main__":
    main()
