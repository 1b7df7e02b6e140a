#!/usr/bin/env python3
"""CPU goldens for src/engine/model_patches_test.cpp: the pinned ComfyUI's own FreeU / FreeU_V2
(comfy_extras/nodes_freelunch.py) and RescaleCFG (comfy_extras/nodes_model_advanced.py) patch functions, taken
from their nodes' patch() on a stand-in MODEL, applied
  - directly to random (h, hsp) pairs at both FreeU widths (model_channels*4 and *2),
  - inside ComfyUI's tiny UNet forward (transformer_options patches: output_block_patch, chained),
  - through comfy.samplers.cfg_function (RescaleCFG), with and without an unconditional prediction,
all fp32 on the CPU. Writes <case>.idx/.bin in make_unet_vae_reference.py's format.
Usage (repo root): /usr/bin/python3 tools/parity/patches_golden.py /work/main/.peer tests/data/patches"""
import json, os, sys
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu"))
import cpu_comfy  # noqa: E402

cpu_comfy.setup(sys.argv[1])
import torch  # noqa: E402
import comfy.samplers  # noqa: E402
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: E402
from comfy_extras.nodes_freelunch import FreeU, FreeU_V2  # noqa: E402
from comfy_extras.nodes_model_advanced import RescaleCFG  # noqa: E402

OUT = sys.argv[2]


def save(name, cfg, tensors):
    off, lines, blobs = 0, ["config " + json.dumps(cfg)], []
    for k, v in tensors.items():
        a = v.detach().float().contiguous().numpy().astype("<f4")
        lines.append("{} {} {}".format(k, "x".join(map(str, a.shape)) or "s", off))
        off += a.size
        blobs.append(a.ravel())
    open(os.path.join(OUT, name + ".idx"), "w").write("\n".join(lines) + "\n")
    np.concatenate(blobs).tofile(os.path.join(OUT, name + ".bin"))


class StandInModel:
    """What the patch nodes read of a MODEL (model.model.model_config.unet_config) and call (clone, set_*)."""

    def __init__(self, model_channels):
        self.model = type("M", (), {})()
        self.model.model_config = type("C", (), {"unet_config": {"model_channels": model_channels}})()
        self.block_patches, self.cfg_fn = [], None

    def clone(self):
        c = StandInModel(self.model.model_config.unet_config["model_channels"])
        c.block_patches, c.cfg_fn = list(self.block_patches), self.cfg_fn
        return c

    def set_model_output_block_patch(self, p):
        self.block_patches.append(p)

    def set_model_sampler_cfg_function(self, f, disable_cfg1_optimization=False):
        self.cfg_fn = f


def formula_weights(name, shape):
    """0.1·sin(0.7·i + 0.001·seed) (+1 for 1-D weights), i the flat index, seed from the name's bytes."""
    seed = sum(c * (j + 1) for j, c in enumerate(name.encode())) % 1000
    n = int(np.prod(shape)) if len(shape) else 1
    v = 0.1 * np.sin(0.7 * np.arange(n, dtype=np.float64) + 0.001 * seed)
    if len(shape) == 1 and name.endswith("weight"):
        v = v + 1.0
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


def freeu(m, v2, b1, b2, s1, s2):
    return (FreeU_V2() if v2 else FreeU()).patch(m, b1, b2, s1, s2)[0]


os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
with torch.no_grad():
    # 1. The patch functions on random features (odd and even spatial sizes).
    t = {}
    mc = 32
    for v2 in (False, True):
        m = freeu(StandInModel(mc), v2, 1.15, 1.25, 0.85, 0.3)
        for ch, (hh, ww) in ((4 * mc, (5, 6)), (2 * mc, (7, 9)), (mc, (4, 4))):
            tag = "{}.{}".format("v2" if v2 else "v1", ch)
            h, hsp = torch.randn(2, ch, hh, ww), torch.randn(2, ch // 2, hh, ww)
            t["in.h." + tag], t["in.hsp." + tag] = h.clone(), hsp.clone()
            ho, hspo = m.block_patches[0](h, hsp, {})
            t["out.h." + tag], t["out.hsp." + tag] = ho, hspo
    save("freeu_fn", {"model_channels": mc, "b1": 1.15, "b2": 1.25, "s1": 0.85, "s2": 0.3}, t)

    # 2. ComfyUI's tiny UNet (make_unet_vae_reference.py's unet_tiny) with FreeU then FreeU_V2 chained.
    cfg = dict(model_channels=32, channel_mult=[1, 2], num_res_blocks=[1, 1], transformer_depth_middle=1,
               transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1], num_heads=2, num_head_channels=-1,
               context_dim=32, use_linear_in_transformer=False, adm_in_channels=None)
    unet = UNetModel(image_size=32, in_channels=4, out_channels=4, use_spatial_transformer=True, legacy=False,
                     dtype=torch.float32, **cfg)
    # Weights by formula (model_patches_test.cpp computes the same), not stored: the golden stays small.
    for k, p in unet.named_parameters():
        p.data = formula_weights(k, p.shape)
    t = {}
    m = freeu(freeu(StandInModel(32), False, 1.1, 1.2, 0.9, 0.2), True, 1.3, 1.4, 0.8, 0.3)
    t["in.x"], t["in.t"] = torch.randn(2, 4, 9, 7), torch.tensor([981.5, 3.0])
    t["in.context"] = torch.randn(2, 7, 32)
    opts = {"patches": {"output_block_patch": m.block_patches}}
    t["out.plain"] = unet(t["in.x"], t["in.t"], context=t["in.context"])
    t["out.freeu"] = unet(t["in.x"], t["in.t"], context=t["in.context"], transformer_options=opts)
    save("freeu_unet", cfg, t)

    # 3. RescaleCFG through cfg_function (x0 predictions in, x0 out), sigma per row.
    m = RescaleCFG().patch(StandInModel(32), 0.7)[0]
    t = {"in.x": torch.randn(2, 4, 6, 5) * 3, "in.sigma": torch.tensor([2.5, 0.4]),
         "in.cond": torch.randn(2, 4, 6, 5), "in.uncond": torch.randn(2, 4, 6, 5)}
    opts = {"sampler_cfg_function": m.cfg_fn}
    t["out.cfg7"] = comfy.samplers.cfg_function(None, t["in.cond"], t["in.uncond"], 7.0, t["in.x"], t["in.sigma"],
                                                model_options=opts)
    zeros = torch.zeros_like(t["in.cond"])  # cfg 1: calc_cond_batch leaves the skipped uncond at zero
    t["out.cfg1"] = comfy.samplers.cfg_function(None, t["in.cond"], zeros, 1.0, t["in.x"], t["in.sigma"],
                                                model_options=opts)
    save("rescale_cfg", {"multiplier": 0.7}, t)
print("wrote", OUT)
