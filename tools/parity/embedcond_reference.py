#!/usr/bin/env python3
"""Parity of textual-inversion embeddings (family `embeddings`) and of conditioning masks, timestep ranges and
percentage areas (family `condmask`): the pinned ComfyUI's node classes in-process against `netdist run` of the
same API workflows, on the random-weight SD1.5 / SDXL checkpoints of tests/parity/run_gpu_parity.sh.

    python3 tools/parity/embedcond_reference.py --family embeddings|condmask --peer .peer --ckpt SD15
            [--sdxl-ckpt SDXL] --out DIR
    python3 tools/parity/embedcond_reference.py --family embeddings|condmask --compare DIR

Reference mode writes DIR/models/checkpoints (links), DIR/models/embeddings (random embeddings of the real
widths: an SD1 file with emb_params [4, 768], an SDXL file with clip_l [2, 768] and clip_g [2, 1280], a 1-D one
in a subfolder), DIR/input/mask.png (the inpaint step's RGBA picture: its alpha makes LoadImage's mask), and for
each case CASE.json and ComfyUI's ref_CASE.png, and cases.txt. ComfyUI loads the checkpoints with
embedding_directory = DIR/models/embeddings, as its CheckpointLoaderSimple does with the embeddings folder.
Compare mode prints "FAMILY: CASE <TAB> pass|FAIL <TAB> mean and largest 8-bit difference <TAB> bound"
(mean <= 2 levels, docs/parity.md's whole-image bound). The workflow runner and the picture come from
inpaint_reference.py.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import inpaint_reference as ir  # noqa: E402

CFG = 7.0
EMBED_CASES = {
    "sd15_embedding": ("sd15", "a photo of embedding:ti_sd15 castle", "blurry"),
    "sd15_weighted_subfolder": ("sd15", "(embedding:ti_sub:1.2), a castle on a hill", "embedding:ti_sd15"),
    "sd15_missing_and_comma": ("sd15", "a embedding:nothere castle, embedding:ti_sd15, hill", "blurry"),
    "sdxl_embedding": ("sdxl", "a castle, embedding:ti_sdxl on a hill", "blurry"),
}
# case: how the positive conditioning is made (all on sd15, 512², a second text B besides A)
COND_CASES = ("mask_default", "mask_bounds", "timestep_range", "area_percent", "mask_batch2")


def make_embeddings(folder):
    import torch
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(3)
    os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
    save_file({"emb_params": 0.02 * torch.randn((4, 768), generator=g)}, os.path.join(folder, "ti_sd15.safetensors"))
    save_file({"clip_l": 0.02 * torch.randn((2, 768), generator=g), "clip_g": 0.02 * torch.randn((2, 1280), generator=g)},
              os.path.join(folder, "ti_sdxl.safetensors"))
    save_file({"emb": 0.02 * torch.randn((768,), generator=g)}, os.path.join(folder, "sub", "ti_sub.safetensors"))


def text(nid, t, clip):
    return {"class_type": "CLIPTextEncode", "inputs": {"text": t, "clip": clip}}


def tail(wf, a, latent, prefix, batch=1):
    wf["6"] = {"class_type": "EmptyLatentImage", "inputs": {"width": a.size, "height": a.size, "batch_size": batch}}
    wf["7"] = {"class_type": "KSampler",
               "inputs": {"model": ["1", 0], "seed": a.seed, "steps": a.steps, "cfg": CFG, "sampler_name": "euler",
                          "scheduler": "normal", "positive": ["5", 0], "negative": ["3", 0],
                          "latent_image": ["6", 0], "denoise": 1.0}}
    wf["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}
    wf["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": prefix}}
    return wf


def embed_workflow(a, names, case, prefix):
    family, pos, neg = EMBED_CASES[case]
    wf = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": names[family]}},
          "5": text("5", pos, ["1", 1]), "3": text("3", neg, ["1", 1])}
    size = a.size if family == "sd15" else 1024
    return tail(wf, argparse.Namespace(**dict(vars(a), size=size)), None, prefix)


def cond_workflow(a, names, case, prefix):
    wf = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": names["sd15"]}},
          "2": text("2", "a castle on a hill", ["1", 1]), "3": text("3", "blurry", ["1", 1]),
          "4": text("4", "a red dragon in the sky", ["1", 1]),
          "11": {"class_type": "LoadImage", "inputs": {"image": "mask.png"}}}
    if case in ("mask_default", "mask_bounds", "mask_batch2"):
        wf["12"] = {"class_type": "ConditioningSetMask",
                    "inputs": {"conditioning": ["4", 0], "mask": ["11", 1], "strength": 0.8,
                               "set_cond_area": "default" if case != "mask_bounds" else "mask bounds"}}
    elif case == "timestep_range":
        wf["13"] = {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["2", 0], "start": 0.0,
                                                                          "end": 0.4}}
        wf["12"] = {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["4", 0], "start": 0.4,
                                                                          "end": 1.0}}
    else:
        wf["12"] = {"class_type": "ConditioningSetAreaPercentage",
                    "inputs": {"conditioning": ["4", 0], "width": 0.5, "height": 0.4, "x": 0.25, "y": 0.3,
                               "strength": 1.2}}
    first = ["13", 0] if case == "timestep_range" else ["2", 0]
    wf["5"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": first, "conditioning_2": ["12", 0]}}
    return tail(wf, a, None, prefix, batch=2 if case == "mask_batch2" else 1)


def reference(a):
    ck_dir = os.path.join(a.out, "models", "checkpoints")
    emb_dir = os.path.join(a.out, "models", "embeddings")
    os.makedirs(ck_dir, exist_ok=True)
    os.makedirs(os.path.join(a.out, "input"), exist_ok=True)
    names = {"sd15": os.path.basename(a.ckpt)}
    if a.sdxl_ckpt:
        names["sdxl"] = os.path.basename(a.sdxl_ckpt)
    for fam, path in (("sd15", a.ckpt), ("sdxl", a.sdxl_ckpt)):
        if path and not os.path.exists(os.path.join(ck_dir, names[fam])):
            os.symlink(os.path.abspath(path), os.path.join(ck_dir, names[fam]))
    make_embeddings(emb_dir)
    ir.make_picture(os.path.join(a.out, "input", "mask.png"), a.size)

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

    classes = dict(nodes.NODE_CLASS_MAPPINGS)
    folder_paths.set_input_directory(os.path.abspath(os.path.join(a.out, "input")))
    models = {}
    for fam, name in names.items():
        m, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
            os.path.join(ck_dir, name), output_vae=True, output_clip=True, embedding_directory=[emb_dir])
        models[name] = (m, clip, vae)
    cases = [c for c in EMBED_CASES if EMBED_CASES[c][0] in names] if a.family == "embeddings" else list(COND_CASES)
    done = []
    for case in cases:
        prefix = "netdist_" + case
        wf = embed_workflow(a, names, case, prefix) if a.family == "embeddings" else cond_workflow(a, names, case, prefix)
        with open(os.path.join(a.out, case + ".json"), "w") as f:
            json.dump(wf, f, indent=1)
        image = ir.run_in_comfy(wf, models, classes)
        for i in range(image.shape[0]):
            arr = np.clip(255.0 * image[i].cpu().numpy(), 0, 255).astype(np.uint8)
            suffix = "" if i == 0 else "_%d" % i
            Image.fromarray(arr).save(os.path.join(a.out, "ref_" + case + suffix + ".png"))
        done.append(case)
        print(f"reference: {case} {list(image.shape)} on {torch.cuda.get_device_name(0)}")
    with open(os.path.join(a.out, "cases.txt"), "w") as f:
        f.write("\n".join(done) + "\n")


def compare(family, out_dir):
    import numpy as np
    from PIL import Image
    failed = 0
    for case in open(os.path.join(out_dir, "cases.txt")).read().split():
        for i in range(2 if case == "mask_batch2" else 1):
            suffix = "" if i == 0 else "_%d" % i
            ref = np.array(Image.open(os.path.join(out_dir, "ref_" + case + suffix + ".png")).convert("RGB"))
            got_path = os.path.join(out_dir, "netdist", "netdist_%s_%05d_.png" % (case, i + 1))
            label = f"{family}: {case}{suffix}"
            if not os.path.isfile(got_path):
                print(f"{label}\tFAIL\tnetdist wrote no {os.path.basename(got_path)}\t-")
                failed += 1
                continue
            got = np.array(Image.open(got_path).convert("RGB"))
            if got.shape != ref.shape:
                print(f"{label}\tFAIL\tshape {got.shape} vs {ref.shape}\t-")
                failed += 1
                continue
            diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
            mean, worst = float(diff.mean()), int(diff.max())
            ok = mean <= 2.0
            failed += 0 if ok else 1
            print(f"{label}\t{'pass' if ok else 'FAIL'}\tmean {mean:.3f} /255, max {worst}\tmean <= 2 /255")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=["embeddings", "condmask"], required=True)
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
        sys.exit(compare(a.family, a.compare))
    if not a.ckpt or not a.out:
        ap.error("--ckpt and --out are needed (or --compare DIR)")
    import torch
    with torch.inference_mode():
        reference(a)


if __name__ == "__main__":
    main()
