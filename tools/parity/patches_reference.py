#!/usr/bin/env python3
"""Model-patch parity (issue #20): FreeU, FreeU_V2, RescaleCFG and chains of them (with LoraLoaderModelOnly's
model-only path left to the LoRA rows) in the pinned ComfyUI against `netdist run` of the same API workflow, on
the random-weight sd15 and sdxl checkpoints that tests/parity/run_gpu_parity.sh makes.

    python3 tools/parity/patches_reference.py --peer .peer --ckpt SD15 [--sdxl-ckpt SDXL] --out DIR
    python3 tools/parity/patches_reference.py --compare DIR        (after netdist ran DIR/CASE.json)

Each case is one txt2img workflow whose MODEL goes through the patch nodes before KSampler; ComfyUI runs it with
its own node classes in-process (inpaint_reference.run_in_comfy), GPU, defaults (fp16 UNet), as netdist does with
no precision flags. Reference mode writes DIR/models/checkpoints (links), CASE.json, ref_CASE.png and cases.txt;
compare mode prints one tab-separated row per case: "patches: CASE", pass|FAIL, mean and largest 8-bit
difference, bound (mean <= 2 levels, docs/parity.md's whole-image bound).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inpaint_reference as ir  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse, detailed"
NEGATIVE = "blurry, low quality"
CFG = 7.0
FREEU = {"b1": 1.1, "b2": 1.2, "s1": 0.9, "s2": 0.2}
FREEU_V2 = {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}
# case: (checkpoint "sd15" or "sdxl", [(class_type, inputs)], sampler, scheduler, cfg)
CASES = {
    "freeu": ("sd15", [("FreeU", FREEU)], "euler", "normal", CFG),
    "freeu_v2": ("sd15", [("FreeU_V2", FREEU_V2)], "dpmpp_2m", "karras", CFG),
    "rescale_cfg": ("sd15", [("RescaleCFG", {"multiplier": 0.7})], "euler_ancestral", "normal", CFG),
    "rescale_cfg_cfg1": ("sd15", [("RescaleCFG", {"multiplier": 0.7})], "euler", "normal", 1.0),
    "chain_freeu_v2_rescale": ("sd15", [("FreeU_V2", FREEU_V2), ("RescaleCFG", {"multiplier": 0.5})], "dpmpp_2m",
                               "karras", CFG),
    "sdxl_freeu_v2_rescale": ("sdxl", [("FreeU_V2", FREEU_V2), ("RescaleCFG", {"multiplier": 0.7})], "euler",
                              "normal", CFG),
}


def workflow(a, names, case, prefix):
    ckpt, chain, sampler, scheduler, cfg = CASES[case]
    size = 1024 if ckpt == "sdxl" else a.size
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": names[ckpt]}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
    }
    model = ["1", 0]
    for i, (cls, inputs) in enumerate(chain):
        nid = str(20 + i)
        wf[nid] = {"class_type": cls, "inputs": dict(inputs, model=model)}
        model = [nid, 0]
    wf["7"] = {"class_type": "KSampler",
               "inputs": {"model": model, "seed": a.seed, "steps": a.steps, "cfg": cfg, "sampler_name": sampler,
                          "scheduler": scheduler, "positive": ["2", 0], "negative": ["3", 0],
                          "latent_image": ["6", 0], "denoise": 1.0}}
    wf["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}
    wf["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": prefix}}
    return wf


def reference(a):
    ck_dir = os.path.join(a.out, "models", "checkpoints")
    os.makedirs(ck_dir, exist_ok=True)
    names = {}
    for key, path in (("sd15", a.ckpt), ("sdxl", a.sdxl_ckpt)):
        if not path:
            continue
        names[key] = os.path.basename(path)
        link = os.path.join(ck_dir, names[key])
        if not os.path.exists(link):
            os.symlink(os.path.abspath(path), link)
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
    from comfy_extras import nodes_freelunch, nodes_model_advanced

    classes = dict(nodes.NODE_CLASS_MAPPINGS)
    classes.update(nodes_freelunch.NODE_CLASS_MAPPINGS)
    classes.update(nodes_model_advanced.NODE_CLASS_MAPPINGS)
    models = {}
    for name in names.values():
        m, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(os.path.join(ck_dir, name), output_vae=True,
                                                                output_clip=True)
        models[name] = (m, clip, vae)
    done = []
    for case, spec in CASES.items():
        if spec[0] not in names:
            continue
        wf = workflow(a, names, case, "netdist_" + case)
        with open(os.path.join(a.out, case + ".json"), "w") as f:
            json.dump(wf, f, indent=1)
        image = ir.run_in_comfy(wf, models, classes)
        arr = np.clip(255.0 * image[0].cpu().numpy(), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(os.path.join(a.out, "ref_" + case + ".png"))
        done.append(case)
        print(f"reference: {case} {list(image.shape)} on {torch.cuda.get_device_name(0)}")
    with open(os.path.join(a.out, "cases.txt"), "w") as f:
        f.write("\n".join(done) + "\n")


def compare(out_dir):
    import io
    import contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = ir.compare(out_dir)
    sys.stdout.write(buf.getvalue().replace("inpaint: ", "patches: "))
    return status


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
