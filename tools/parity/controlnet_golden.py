#!/usr/bin/env python3
"""ControlNet goldens made by the pinned ComfyUI's own classes on the CPU (tools/parity/cpu/cpu_comfy.py).

Tiny configs (model_channels 32, channel_mult [1, 2], one res block, context 32, 32-wide heads): an SD1-like
UNet + ControlNet (conv proj_in, no ADM) and an SDXL-like pair (linear proj_in, ADM 48). Weights are not
stored: every parameter is drawn by fill() below from torch's CPU generator in sorted-name order, which the C++
test (src/engine/control/controlnet_test.cpp) repeats with libtorch's identical generator; the file stores
per-parameter sums so a drift in that scheme is reported as such.

Each case runs comfy.controlnet.ControlNet.get_control (two chained ControlNets, strengths, a start/end
percent range converted by ModelSamplingDiscrete.percent_to_sigma, a hint of another size and aspect
resized by common_upscale nearest-exact/center, batch broadcast over two conditioning blocks) and the
denoiser call BaseModel._apply_model does with that control (calculate_input, UNetModel(control=...),
calculate_denoised). Output: tests/data/controlnet/controlnet_golden.safetensors.

    /usr/bin/python3 tools/parity/controlnet_golden.py [--peer /work/main/.peer]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "cpu"))
import cpu_comfy  # noqa: E402


def fill(module, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    sd = module.state_dict()
    new = {}
    sums = {}
    for name in sorted(sd):
        t = sd[name]
        r = torch.randn(tuple(t.shape), generator=g, dtype=torch.float32)
        if t.dim() >= 2:
            fan_in = 1
            for s in t.shape[1:]:
                fan_in *= s
            r = r * (1.0 / fan_in ** 0.5)
        elif name.endswith(".weight"):
            r = r * 0.1 + 1.0
        else:
            r = r * 0.1
        new[name] = r
        sums[name] = float(r.double().sum())
    module.load_state_dict(new, strict=True)
    return sums


def unet_kwargs(sdxl):
    import comfy.ops
    kw = dict(image_size=32, in_channels=4, model_channels=32, num_res_blocks=[1, 1], dropout=0,
              channel_mult=[1, 2], num_head_channels=32, transformer_depth=[1, 1], context_dim=32,
              use_linear_in_transformer=sdxl, transformer_depth_middle=1, use_spatial_transformer=True,
              legacy=False, dtype=None, device="cpu", operations=comfy.ops.disable_weight_init)
    if sdxl:
        kw.update(num_classes="sequential", adm_in_channels=48)
    return kw


def make_case(name, sdxl, out):
    import torch
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.model_sampling
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    kw = unet_kwargs(sdxl)
    unet = UNetModel(out_channels=4, transformer_depth_output=[1, 1, 1, 1], **kw).eval()
    cn_kw = dict(kw)
    cn_kw.pop("image_size")
    cn1 = comfy.cldm.cldm.ControlNet(image_size=32, hint_channels=3, **cn_kw).eval()
    cn2 = comfy.cldm.cldm.ControlNet(image_size=32, hint_channels=3, **cn_kw).eval()
    seeds = {"unet": 11, "cn1": 12, "cn2": 13}
    for key, mod in (("unet", unet), ("cn1", cn1), ("cn2", cn2)):
        sums = fill(mod, seeds[key])  # sorted names
        out[f"{name}.sums.{key}"] = torch.tensor([sums[k] for k in sorted(sums)], dtype=torch.float64)

    ms_class = type("MS", (comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS), {})
    ms = ms_class(None)

    class Holder:
        model_sampling = ms

    g = torch.Generator().manual_seed(5)
    images, blocks, h, w = 2, 2, 8, 8
    x = torch.randn(blocks * images, 4, h, w, generator=g)
    context = torch.randn(blocks * images, 8, 32, generator=g)
    y = torch.randn(blocks * images, 48, generator=g) if sdxl else None
    hint1 = torch.rand(3, 3, 24, 40, generator=g)   # 3 hint rows for 2 images, wider than the latent
    hint2 = torch.rand(1, 3, 36, 28, generator=g)   # one row, taller
    out[f"{name}.x"] = x
    out[f"{name}.context"] = context
    if y is not None:
        out[f"{name}.y"] = y
    out[f"{name}.hint1"] = hint1
    out[f"{name}.hint2"] = hint2

    percent = lambda p: ms.percent_to_sigma(p)  # noqa: E731
    for step, sig in enumerate([14.0, 1.5, 0.1]):
        c1 = comfy.controlnet.ControlNet(cn1, load_device="cpu").copy()
        c1.set_cond_hint(hint1, 0.7, (0.0, 1.0))
        c2 = comfy.controlnet.ControlNet(cn2, load_device="cpu").copy()
        c2.set_cond_hint(hint2, 1.3, (0.2, 0.9))
        c2.set_previous_controlnet(c1)
        c2.pre_run(Holder(), percent)
        sigma = torch.full((blocks * images,), sig)
        cond = {"c_crossattn": context}
        if y is not None:
            cond["y"] = y
        control = c2.get_control(x, sigma, cond, blocks, {})
        for key in ("middle", "output"):
            for i, t in enumerate(control[key]):
                if step < 2 and (key == "middle" or i in (0, 3)):
                    out[f"{name}.s{step}.{key}.{i}"] = t.clone()
        xc = ms.calculate_input(sigma, x)
        t = ms.timestep(sigma).float()
        model_out = unet(xc, t, context=context, y=y, control=control)
        out[f"{name}.s{step}.denoised"] = ms.calculate_denoised(sigma, model_out, x)
        out[f"{name}.s{step}.sigma"] = sigma
    out[f"{name}.range"] = torch.tensor([percent(0.2), percent(0.9)], dtype=torch.float64)


def ksampler_case(out):
    """A whole KSampler run (comfy.sample.sample: euler, normal, 4 steps, cfg 5, batch 2) on the tiny SD1-like
    UNet wrapped in comfy.model_base.BaseModel (SD1.5 latent format), positive and negative sharing a chain of two
    ControlNets as ControlNetApplyAdvanced makes it (the second active from 20 % to 70 %)."""
    import torch
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.latent_formats
    import comfy.model_base
    import comfy.model_patcher
    import comfy.sample
    import comfy.supported_models_base

    kw = unet_kwargs(False)
    cfg = {k: v for k, v in kw.items() if k not in ("dtype", "device", "operations")}
    cfg.update(out_channels=4, transformer_depth_output=[1, 1, 1, 1])

    class Tiny(comfy.supported_models_base.BASE):
        unet_config = {}
        unet_extra_config = {"num_heads": -1, "num_head_channels": 32}
        latent_format = comfy.latent_formats.SD15

    model_config = Tiny(dict(cfg))
    model = comfy.model_base.BaseModel(model_config, device="cpu")
    fill(model.diffusion_model, 11)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                               offload_device=torch.device("cpu"))
    cn_kw = dict(kw)
    cn_kw.pop("image_size")
    cn1 = comfy.cldm.cldm.ControlNet(image_size=32, hint_channels=3, **cn_kw).eval()
    cn2 = comfy.cldm.cldm.ControlNet(image_size=32, hint_channels=3, **cn_kw).eval()
    fill(cn1, 12)
    fill(cn2, 13)
    g = torch.Generator().manual_seed(6)
    pos_ctx = torch.randn(1, 8, 32, generator=g)
    neg_ctx = torch.randn(1, 8, 32, generator=g)
    hint = torch.rand(2, 3, 40, 40, generator=g)
    c1 = comfy.controlnet.ControlNet(cn1, load_device=torch.device("cpu")).copy().set_cond_hint(hint, 0.8)
    c2 = comfy.controlnet.ControlNet(cn2, load_device=torch.device("cpu")).copy().set_cond_hint(hint[:1], 1.2,
                                                                                                (0.2, 0.7))
    c2.set_previous_controlnet(c1)
    positive = [[pos_ctx, {"control": c2, "control_apply_to_uncond": False}]]
    negative = [[neg_ctx, {"control": c2, "control_apply_to_uncond": False}]]
    latent = torch.zeros(2, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 21)
    samples = comfy.sample.sample(patcher, noise, 4, 5.0, "euler", "normal", positive, negative, latent, seed=21)
    out["ksampler.pos"] = pos_ctx
    out["ksampler.neg"] = neg_ctx
    out["ksampler.hint"] = hint
    out["ksampler.samples"] = samples.float()


def schema_golden(path):
    """INPUT_TYPES, outputs, names and categories of the four ControlNet classes (folder lists emptied)."""
    import json
    import nodes
    import folder_paths
    folder_paths.get_filename_list = lambda name: []
    out = {}
    for cls in ("ControlNetLoader", "DiffControlNetLoader", "ControlNetApply", "ControlNetApplyAdvanced"):
        c = nodes.NODE_CLASS_MAPPINGS[cls]
        it = c.INPUT_TYPES()
        out[cls] = {
            "input": {k: {n: list(v) for n, v in it[k].items()} for k in it},
            "output": list(c.RETURN_TYPES),
            "output_name": list(getattr(c, "RETURN_NAMES", c.RETURN_TYPES)),
            "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(cls, cls),
            "category": c.CATEGORY,
            "deprecated": bool(getattr(c, "DEPRECATED", False)),
        }
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default="/work/main/.peer")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "data", "controlnet",
                                                  "controlnet_golden.safetensors"))
    a = ap.parse_args()
    cpu_comfy.setup(a.peer)
    import torch
    torch.set_grad_enabled(False)
    out = {}
    make_case("sd1", False, out)
    make_case("sdxl", True, out)
    ksampler_case(out)
    out = {k: v.contiguous() for k, v in out.items()}
    cpu_comfy.save_file(out, os.path.abspath(a.out), metadata={"generator": "tools/parity/controlnet_golden.py"})
    print("wrote", os.path.abspath(a.out), len(out), "tensors")
    schema_golden(os.path.join(os.path.dirname(os.path.abspath(a.out)), "schema_golden.json"))


if __name__ == "__main__":
    main()
