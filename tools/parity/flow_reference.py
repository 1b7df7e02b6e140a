#!/usr/bin/env python3
"""Custom-sampling / flow-matching parity: SamplerCustomAdvanced workflows in the pinned ComfyUI against `netdist run`.

    python3 tools/parity/flow_reference.py --peer .peer --ckpt CKPT --out DIR [--size 512] [--steps 20]
    python3 tools/parity/flow_reference.py --compare DIR        (after netdist ran DIR/CASE.json)

Runs on the GPU machine (tests/parity/run_gpu_parity.sh, step `flow`), on the random-weight SD1.5 checkpoint the
sd15 step makes. Each case is one API workflow: CheckpointLoaderSimple → [ModelSamplingSD3 shift 3] →
RandomNoise + CFGGuider (cfg 7) or BasicGuider + KSamplerSelect + BasicScheduler → SamplerCustomAdvanced →
VAEDecode → SaveImage. ComfyUI runs the same node classes in-process (comfy_extras/nodes_model_advanced.py,
nodes_custom_sampler.py), with its defaults on the GPU (fp16 UNet, its default VAE dtype), as netdist does with
no precision flags; each case gets a fresh ModelSamplingSD3 object, so BasicScheduler computes on the CPU in
both programs.

Reference mode writes into DIR: models/checkpoints/<ckpt> (a link), for each case CASE.json (the workflow
netdist runs) and ref_CASE.png (ComfyUI's image, saved as SaveImage saves it), and cases.txt.
Compare mode prints one tab-separated row per case for the parity table: "flow: CASE", pass|FAIL, the mean and
largest |difference| in 8-bit levels, and the bound (mean <= 2 levels, docs/parity.md's whole-image bound).
"""
import argparse
import json
import os
import sys

PROMPT = "a photograph of an astronaut riding a horse, detailed"
NEGATIVE = "blurry, low quality"
# case: (ModelSamplingSD3 shift or None, guider, sampler, scheduler)
CASES = {
    "sd3_euler_simple_cfg": (3.0, "cfg", "euler", "simple"),
    "sd3_dpmpp_2m_sgm_uniform_cfg": (3.0, "cfg", "dpmpp_2m", "sgm_uniform"),
    "sd3_euler_ancestral_simple_cfg": (3.0, "cfg", "euler_ancestral", "simple"),
    "sd3_euler_sgm_uniform_basic": (3.0, "basic", "euler", "sgm_uniform"),
    "eps_dpmpp_2m_karras_cfg": (None, "cfg", "dpmpp_2m", "karras"),
}
CFG = 7.0


def workflow(a, ckpt_name, case, prefix):
    shift, guider, sampler, scheduler = CASES[case]
    model = ["5", 0] if shift is not None else ["1", 0]
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": a.size, "height": a.size, "batch_size": 1}},
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": a.seed}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler}},
        "9": {"class_type": "BasicScheduler",
              "inputs": {"model": model, "scheduler": scheduler, "steps": a.steps, "denoise": 1.0}},
        "10": {"class_type": "SamplerCustomAdvanced",
               "inputs": {"noise": ["6", 0], "guider": ["7", 0], "sampler": ["8", 0], "sigmas": ["9", 0],
                          "latent_image": ["4", 0]}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": prefix}},
    }
    if shift is not None:
        wf["5"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": shift}}
    if guider == "cfg":
        wf["7"] = {"class_type": "CFGGuider",
                   "inputs": {"model": model, "positive": ["2", 0], "negative": ["3", 0], "cfg": CFG}}
    else:
        wf["7"] = {"class_type": "BasicGuider", "inputs": {"model": model, "conditioning": ["2", 0]}}
    return wf


def reference(a):
    os.makedirs(os.path.join(a.out, "models", "checkpoints"), exist_ok=True)
    link = os.path.join(a.out, "models", "checkpoints", os.path.basename(a.ckpt))
    if not os.path.exists(link):
        os.symlink(os.path.abspath(a.ckpt), link)

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
    from comfy_extras import nodes_custom_sampler as ncs
    from comfy_extras import nodes_model_advanced as nma

    base, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(a.ckpt, output_vae=True, output_clip=True)
    (positive,) = nodes.CLIPTextEncode().encode(clip, PROMPT)
    (negative,) = nodes.CLIPTextEncode().encode(clip, NEGATIVE)
    names = []
    for case, (shift, guider_kind, sampler_name, scheduler) in CASES.items():
        with open(os.path.join(a.out, case + ".json"), "w") as f:
            json.dump(workflow(a, os.path.basename(a.ckpt), case, "netdist_" + case), f, indent=1)
        model = nma.ModelSamplingSD3().patch(base, shift)[0] if shift is not None else base
        (latent,) = nodes.EmptyLatentImage().generate(a.size, a.size, 1)
        (noise,) = ncs.RandomNoise().get_noise(a.seed)
        if guider_kind == "cfg":
            (guider,) = ncs.CFGGuider().get_guider(model, positive, negative, CFG)
        else:
            (guider,) = ncs.BasicGuider().get_guider(model, positive)
        (sampler,) = ncs.KSamplerSelect().get_sampler(sampler_name)
        (sigmas,) = ncs.BasicScheduler().get_sigmas(model, scheduler, a.steps, 1.0)
        out, _ = ncs.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)
        (image,) = nodes.VAEDecode().decode(vae, out)
        arr = np.clip(255.0 * image[0].cpu().numpy(), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(os.path.join(a.out, "ref_" + case + ".png"))
        names.append(case)
        print(f"reference: {case} sigmas {[round(float(s), 6) for s in sigmas[:3]]}... "
              f"{list(image.shape)} on {torch.cuda.get_device_name(0)}")
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
            print(f"flow: {case}\tFAIL\tnetdist wrote no {os.path.basename(got_path)}\t-")
            failed += 1
            continue
        got = np.array(Image.open(got_path).convert("RGB")).astype(np.int32)
        if got.shape != ref.shape:
            print(f"flow: {case}\tFAIL\tshape {got.shape} vs {ref.shape}\t-")
            failed += 1
            continue
        diff = np.abs(got - ref)
        mean, worst = float(diff.mean()), int(diff.max())
        ok = mean <= 2.0
        failed += 0 if ok else 1
        print(f"flow: {case}\t{'pass' if ok else 'FAIL'}\tmean {mean:.3f} /255, max {worst}\tmean <= 2 /255")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--ckpt")
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
    reference(a)


if __name__ == "__main__":
    import torch
    # ComfyUI's executor runs every node under inference mode; so does this reference (the nodes' tensors
    # would otherwise carry autograd state and some of them call .numpy() on it).
    with torch.inference_mode():
        main()
