#!/usr/bin/env python3
"""Inpainting parity: SetLatentNoiseMask, VAEEncodeForInpaint, InpaintModelConditioning and a 9-channel
inpainting UNet in the pinned ComfyUI against `netdist run`; with --sdxl-ckpt also CLIPTextEncodeSDXL (text_g and
text_l of different lengths, sizes, crops and targets in the ADM vector) and a two-pass KSamplerAdvanced hand-off
on the random SDXL checkpoint at 1024².

    python3 tools/parity/inpaint_reference.py --peer .peer --ckpt CKPT [--sdxl-ckpt SDXL] --out DIR [--size 512]
    python3 tools/parity/inpaint_reference.py --compare DIR        (after netdist ran DIR/CASE.json)
    python3 tools/parity/inpaint_reference.py --peer .peer --make-refiner FILE   (random SDXL refiner checkpoint)

With --refiner-ckpt (made by --make-refiner: ComfyUI's own SDXLRefiner classes, built and filled by
.peer/harness/make_checkpoint.py's build() with model_detection's SDXL_refiner UNet config, fp16) the SDXL cases gain
the base → refiner hand-off (KSamplerAdvanced, CLIPTextEncodeSDXLRefiner with ascore 6 / 2.5) and the refiner
alone with CLIPTextEncode (ComfyUI's default aesthetic scores for positive and negative).

Runs on the GPU machine (tests/parity/run_gpu_parity.sh, step `inpaint`), on the random-weight SD1.5 checkpoint
the sd15 step makes (CKPT) and an inpainting variant of it written here: the same file with its UNet's first
convolution widened to 9 input channels (latent + mask + masked-image latent; the 5 new input channels drawn
N(0, 1/fan_in) from seed 1), which ComfyUI detects as an SD1.5 inpainting model (BaseModel.set_inpaint).
The picture is DIR/input/inpaint.png: a deterministic RGBA gradient whose alpha is 0 in a centred square, so
LoadImage's mask (1 − alpha) is 1 there. Each case is one API workflow that ComfyUI runs through the same node
classes in-process (nodes.py LoadImage, VAEEncode, SetLatentNoiseMask, VAEEncodeForInpaint,
InpaintModelConditioning, KSampler, KSamplerAdvanced), with its defaults on the GPU (fp16 UNet), as netdist does
with no precision flags.

Reference mode writes into DIR: models/checkpoints/ (links to both checkpoints), input/inpaint.png, for each
case CASE.json (the workflow netdist runs) and ref_CASE.png (ComfyUI's image), and cases.txt.
Compare mode prints one tab-separated row per case for the parity table: "inpaint: CASE", pass|FAIL, the mean and
largest |difference| in 8-bit levels, and the bound (mean <= 2 levels, docs/parity.md's whole-image bound).
"""
import argparse
import json
import os
import sys

PROMPT = "a photograph of an astronaut riding a horse, detailed"
NEGATIVE = "blurry, low quality"
INPAINT_CKPT = "sd15_inpaint.safetensors"
CFG = 7.0
# case: (checkpoint "base" or "inpaint", how the latent is made, sampler, scheduler, denoise, KSamplerAdvanced)
CASES = {
    "setmask_euler": ("base", "setmask", "euler", "normal", 1.0, False),
    "setmask_ancestral_karras_denoise": ("base", "setmask", "euler_ancestral", "karras", 0.8, False),
    "setmask_advanced_two_pass": ("base", "setmask", "dpmpp_2m", "karras", 1.0, True),
    "encode_for_inpaint_9ch": ("inpaint", "encode_for_inpaint", "dpmpp_2m", "karras", 1.0, False),
    "model_conditioning_9ch": ("inpaint", "model_conditioning", "euler", "normal", 1.0, False),
    "model_conditioning_base": ("base", "model_conditioning", "euler", "normal", 0.9, False),
    "empty_latent_9ch": ("inpaint", "empty", "euler", "normal", 1.0, False),
}
LONG_G = ", ".join(["a very detailed photograph of a castle on a hill at sunset"] * 8)  # > 77 tokens
# SDXL case: (CLIPTextEncodeSDXL sizes width, height, crop_w, crop_h, target_width, target_height; text_g; text_l;
# sampler, scheduler, two-pass KSamplerAdvanced)
SDXL_CASES = {
    "sdxl_text_sizes": ((1024, 1024, 0, 0, 1024, 1024), "a castle on a hill", "oil painting", "euler", "normal", False),
    "sdxl_text_crop_long_g": ((2048, 1536, 64, 32, 1024, 768), LONG_G, "watercolour", "dpmpp_2m", "karras", False),
    "sdxl_two_pass": ((1024, 1024, 0, 0, 1024, 1024), "a castle on a hill", "a castle", "euler_ancestral", "normal",
                      True),
}
REFINER_CKPT = "sdxl_refiner.safetensors"
REFINER_CASES = ("refiner_handoff", "refiner_alone")
# comfy/model_detection.py unet_config_from_diffusers_unet's SDXL_refiner (without its dtype).
REFINER_UNET = {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
                'legacy': False, 'num_classes': 'sequential', 'adm_in_channels': 2560, 'in_channels': 4,
                'model_channels': 384, 'num_res_blocks': [2, 2, 2, 2], 'transformer_depth': [0, 0, 4, 4, 4, 4, 0, 0],
                'channel_mult': [1, 2, 4, 4], 'transformer_depth_middle': 4, 'use_linear_in_transformer': True,
                'context_dim': 1280, 'num_head_channels': 64,
                'transformer_depth_output': [0, 0, 0, 4, 4, 4, 4, 4, 4, 0, 0, 0],
                'use_temporal_attention': False, 'use_temporal_resblock': False}


def make_refiner(peer, out):
    sys.path.insert(0, os.path.abspath(os.path.join(peer, "harness")))
    import make_checkpoint as mk
    mk.setup_paths(os.path.join(peer, "ComfyUI"))
    import torch
    import comfy.model_management  # noqa: F401
    import comfy.utils
    mk.UNET_CONFIGS["sdxl_refiner"] = dict(REFINER_UNET)
    mk.EXPECTED_CLASS["sdxl_refiner"] = "SDXLRefiner"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, model, clip, vae, _ = mk.build("sdxl_refiner", torch.float16, device, 0)
    sd = model.state_dict_for_saving(clip.state_dict(), vae.state_dict())
    sd = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
    comfy.utils.save_torch_file(sd, out + ".tmp", metadata={"peer.family": "sdxl_refiner"})
    os.replace(out + ".tmp", out)
    print(f"refiner: {len(sd)} tensors written to {out}")


def refiner_workflow(a, sdxl_name, case, prefix):
    half = a.steps * 7 // 10
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sdxl_name}},
        "11": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": REFINER_CKPT}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    }
    if case == "refiner_alone":
        wf["12"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle on a hill", "clip": ["11", 1]}}
        wf["13"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["11", 1]}}
        wf["8"] = {"class_type": "KSampler",
                   "inputs": {"model": ["11", 0], "seed": a.seed, "steps": a.steps, "cfg": CFG, "sampler_name": "euler",
                              "scheduler": "normal", "positive": ["12", 0], "negative": ["13", 0],
                              "latent_image": ["6", 0], "denoise": 1.0}}
    else:
        for nid, text in (("2", "a castle on a hill"), ("3", "blurry")):
            wf[nid] = {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}}
        for nid, text, ascore in (("12", "a castle on a hill", 6.0), ("13", "blurry", 2.5)):
            wf[nid] = {"class_type": "CLIPTextEncodeSDXLRefiner",
                       "inputs": {"ascore": ascore, "width": 1024, "height": 1024, "text": text, "clip": ["11", 1]}}
        common = {"cfg": CFG, "sampler_name": "dpmpp_2m", "scheduler": "karras", "noise_seed": a.seed,
                  "steps": a.steps}
        wf["7"] = {"class_type": "KSamplerAdvanced",
                   "inputs": dict(common, model=["1", 0], add_noise="enable", positive=["2", 0], negative=["3", 0],
                                  latent_image=["6", 0], start_at_step=0, end_at_step=half,
                                  return_with_leftover_noise="enable")}
        wf["8"] = {"class_type": "KSamplerAdvanced",
                   "inputs": dict(common, model=["11", 0], add_noise="disable", positive=["12", 0],
                                  negative=["13", 0], latent_image=["7", 0], start_at_step=half, end_at_step=10000,
                                  return_with_leftover_noise="disable")}
    wf["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["11", 2]}}
    wf["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": prefix}}
    return wf


def make_picture(path, size):
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:size, 0:size]
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = (x * 255 // (size - 1)).astype(np.uint8)
    rgba[..., 1] = (y * 255 // (size - 1)).astype(np.uint8)
    rgba[..., 2] = ((x + y) * 127 // (size - 1)).astype(np.uint8)
    hole = (abs(x - size // 2) < size // 4) & (abs(y - size // 2) < size // 5)
    rgba[..., 3] = np.where(hole, 0, 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(path)


def make_inpaint_checkpoint(src, dst):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(src, "pt") as f:
        meta = f.metadata() or {}
        sd = {k: f.get_tensor(k) for k in f.keys()}
    key = "model.diffusion_model.input_blocks.0.0.weight"
    w = sd[key]
    g = torch.Generator().manual_seed(1)
    fan_in = 9 * w.shape[2] * w.shape[3]
    extra = torch.randn((w.shape[0], 5, w.shape[2], w.shape[3]), generator=g) / fan_in ** 0.5
    sd[key] = torch.cat([w, extra.to(w.dtype)], dim=1).contiguous()
    save_file(sd, dst, metadata=meta)


def sampler_node(a, case, model, positive, negative, latent):
    _, _, sampler, scheduler, denoise, advanced = CASES[case]
    if not advanced:
        return {"class_type": "KSampler",
                "inputs": {"model": model, "seed": a.seed, "steps": a.steps, "cfg": CFG, "sampler_name": sampler,
                           "scheduler": scheduler, "positive": positive, "negative": negative,
                           "latent_image": latent, "denoise": denoise}}
    return {"class_type": "KSamplerAdvanced",
            "inputs": {"model": model, "add_noise": "enable", "noise_seed": a.seed, "steps": a.steps, "cfg": CFG,
                       "sampler_name": sampler, "scheduler": scheduler, "positive": positive, "negative": negative,
                       "latent_image": latent, "start_at_step": 0, "end_at_step": a.steps // 2,
                       "return_with_leftover_noise": "enable"}}


def workflow(a, base_name, case, prefix):
    ckpt, kind = CASES[case][0], CASES[case][1]
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": base_name if ckpt == "base" else INPAINT_CKPT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "inpaint.png"}},
    }
    pos, neg = ["2", 0], ["3", 0]
    if kind == "setmask":
        wf["5"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0], "vae": ["1", 2]}}
        wf["6"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["5", 0], "mask": ["4", 1]}}
    elif kind == "encode_for_inpaint":
        wf["6"] = {"class_type": "VAEEncodeForInpaint",
                   "inputs": {"pixels": ["4", 0], "vae": ["1", 2], "mask": ["4", 1], "grow_mask_by": 6}}
    elif kind == "model_conditioning":
        wf["6"] = {"class_type": "InpaintModelConditioning",
                   "inputs": {"positive": pos, "negative": neg, "vae": ["1", 2], "pixels": ["4", 0],
                              "mask": ["4", 1], "noise_mask": True}}
        pos, neg = ["6", 0], ["6", 1]
    else:
        wf["6"] = {"class_type": "EmptyLatentImage", "inputs": {"width": a.size, "height": a.size, "batch_size": 1}}
    latent = ["6", 2] if kind == "model_conditioning" else ["6", 0]
    wf["7"] = sampler_node(a, case, ["1", 0], pos, neg, latent)
    last = ["7", 0]
    if CASES[case][5]:  # second pass from the middle, the base → refiner hand-off pattern
        second = sampler_node(a, case, ["1", 0], pos, neg, ["7", 0])
        second["inputs"].update({"add_noise": "disable", "start_at_step": a.steps // 2, "end_at_step": 10000,
                                 "return_with_leftover_noise": "disable"})
        wf["8"] = second
        last = ["8", 0]
    wf["9"] = {"class_type": "VAEDecode", "inputs": {"samples": last, "vae": ["1", 2]}}
    wf["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": prefix}}
    return wf


def sdxl_workflow(a, sdxl_name, case, prefix):
    sizes, text_g, text_l, sampler, scheduler, two_pass = SDXL_CASES[case]
    w, h, cw, ch, tw, th = sizes

    def encode(g, l):
        return {"class_type": "CLIPTextEncodeSDXL",
                "inputs": {"clip": ["1", 1], "width": w, "height": h, "crop_w": cw, "crop_h": ch, "target_width": tw,
                           "target_height": th, "text_g": g, "text_l": l}}

    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sdxl_name}},
        "2": encode(text_g, text_l),
        "3": encode("blurry", "low quality"),
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    }
    common = {"model": ["1", 0], "cfg": CFG, "sampler_name": sampler, "scheduler": scheduler, "positive": ["2", 0],
              "negative": ["3", 0]}
    if not two_pass:
        wf["7"] = {"class_type": "KSampler", "inputs": dict(common, seed=a.seed, steps=a.steps, latent_image=["6", 0],
                                                             denoise=1.0)}
        last = ["7", 0]
    else:
        half = a.steps // 2
        wf["7"] = {"class_type": "KSamplerAdvanced",
                   "inputs": dict(common, add_noise="enable", noise_seed=a.seed, steps=a.steps, latent_image=["6", 0],
                                  start_at_step=0, end_at_step=half, return_with_leftover_noise="enable")}
        wf["8"] = {"class_type": "KSamplerAdvanced",
                   "inputs": dict(common, add_noise="disable", noise_seed=a.seed, steps=a.steps, latent_image=["7", 0],
                                  start_at_step=half, end_at_step=10000, return_with_leftover_noise="disable")}
        last = ["8", 0]
    wf["9"] = {"class_type": "VAEDecode", "inputs": {"samples": last, "vae": ["1", 2]}}
    wf["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": prefix}}
    return wf


def run_in_comfy(wf, models, node_classes):
    """Executes an API workflow with ComfyUI's node classes, in id order of dependencies."""
    done = {}

    def value(v):
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
            return evaluate(v[0])[v[1]]
        return v

    def evaluate(nid):
        if nid in done:
            return done[nid]
        node = wf[nid]
        cls = node["class_type"]
        inputs = {k: value(v) for k, v in node["inputs"].items()}
        if cls == "CheckpointLoaderSimple":
            out = models[inputs["ckpt_name"]]
        elif cls == "SaveImage":
            out = (inputs["images"],)
        else:
            obj = node_classes[cls]()
            out = getattr(obj, obj.FUNCTION)(**inputs)
            if isinstance(out, dict):
                out = out["result"]
        done[nid] = out
        return out

    return evaluate("10")[0]


def reference(a):
    ck_dir = os.path.join(a.out, "models", "checkpoints")
    os.makedirs(ck_dir, exist_ok=True)
    os.makedirs(os.path.join(a.out, "input"), exist_ok=True)
    base_name = os.path.basename(a.ckpt)
    link = os.path.join(ck_dir, base_name)
    if not os.path.exists(link):
        os.symlink(os.path.abspath(a.ckpt), link)
    make_inpaint_checkpoint(a.ckpt, os.path.join(ck_dir, INPAINT_CKPT))
    make_picture(os.path.join(a.out, "input", "inpaint.png"), a.size)

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

    from comfy_extras import nodes_clip_sdxl

    classes = dict(nodes.NODE_CLASS_MAPPINGS)
    classes.update(nodes_clip_sdxl.NODE_CLASS_MAPPINGS)
    folder_paths.set_input_directory(os.path.abspath(os.path.join(a.out, "input")))
    sdxl_name = None
    if a.sdxl_ckpt:
        sdxl_name = os.path.basename(a.sdxl_ckpt)
        sdxl_link = os.path.join(ck_dir, sdxl_name)
        if not os.path.exists(sdxl_link):
            os.symlink(os.path.abspath(a.sdxl_ckpt), sdxl_link)
    refiner = bool(a.refiner_ckpt and sdxl_name)
    if refiner:
        r_link = os.path.join(ck_dir, REFINER_CKPT)
        if not os.path.exists(r_link):
            os.symlink(os.path.abspath(a.refiner_ckpt), r_link)
    models = {}
    extra = ((sdxl_name,) if sdxl_name else ()) + ((REFINER_CKPT,) if refiner else ())
    for name in (base_name, INPAINT_CKPT) + extra:
        m, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(os.path.join(ck_dir, name), output_vae=True,
                                                                output_clip=True)
        models[name] = (m, clip, vae)
    print(f"reference: inpaint model concat_keys {models[INPAINT_CKPT][0].model.concat_keys}")
    names = []
    cases = list(CASES) + (list(SDXL_CASES) if sdxl_name else []) + (list(REFINER_CASES) if refiner else [])
    for case in cases:
        if case in REFINER_CASES:
            wf = refiner_workflow(a, sdxl_name, case, "netdist_" + case)
        elif case in SDXL_CASES:
            wf = sdxl_workflow(a, sdxl_name, case, "netdist_" + case)
        else:
            wf = workflow(a, base_name, case, "netdist_" + case)
        with open(os.path.join(a.out, case + ".json"), "w") as f:
            json.dump(wf, f, indent=1)
        image = run_in_comfy(wf, models, classes)
        arr = np.clip(255.0 * image[0].cpu().numpy(), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(os.path.join(a.out, "ref_" + case + ".png"))
        names.append(case)
        print(f"reference: {case} {list(image.shape)} on {torch.cuda.get_device_name(0)}")
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
            print(f"inpaint: {case}\tFAIL\tnetdist wrote no {os.path.basename(got_path)}\t-")
            failed += 1
            continue
        got = np.array(Image.open(got_path).convert("RGB")).astype(np.int32)
        if got.shape != ref.shape:
            print(f"inpaint: {case}\tFAIL\tshape {got.shape} vs {ref.shape}\t-")
            failed += 1
            continue
        diff = np.abs(got - ref)
        mean, worst = float(diff.mean()), int(diff.max())
        ok = mean <= 2.0
        failed += 0 if ok else 1
        print(f"inpaint: {case}\t{'pass' if ok else 'FAIL'}\tmean {mean:.3f} /255, max {worst}\tmean <= 2 /255")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--ckpt")
    ap.add_argument("--sdxl-ckpt")
    ap.add_argument("--refiner-ckpt")
    ap.add_argument("--make-refiner")
    ap.add_argument("--out")
    ap.add_argument("--compare")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    if a.compare:
        sys.exit(compare(a.compare))
    if a.make_refiner:
        make_refiner(a.peer, a.make_refiner)
        return
    if not a.ckpt or not a.out:
        ap.error("--ckpt and --out are needed (or --compare DIR)")
    import torch
    # ComfyUI's executor runs every node under inference mode; so does this reference.
    with torch.inference_mode():
        reference(a)


if __name__ == "__main__":
    main()
