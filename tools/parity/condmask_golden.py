#!/usr/bin/env python3
"""Golden data for netdist's conditioning masks, timestep ranges and percentage areas, made by the pinned
ComfyUI's own comfy/samplers.py (resolve_areas_and_cond_masks_multidim, calculate_start_end_timesteps,
create_cond_with_same_area_if_none, calc_cond_batch with get_area_and_mult) and comfy/model_sampling.py
(ModelSamplingDiscrete.percent_to_sigma), on the CPU (tools/parity/cpu/cpu_comfy.py).

The model is a fixed toy function of (x, sigma, context) so that only the conditioning logic is compared:
    out = 0.5·x + mean(context over tokens and channels) + 0.1·sigma
Each case's entries are described in the file's metadata (JSON under "cases"); the tensors are the inputs
(contexts, masks, x, sigmas) and ComfyUI's calc_cond_batch outputs per sigma. src/engine/cond_masks_test.cpp
rebuilds the same entries as netdist CondEntry values and compares.

Usage (repository root): python3 tools/parity/condmask_golden.py [--peer /work/main/.peer] [--out PATH]
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def toy_apply(x, t, c_crossattn=None, **kwargs):
    return 0.5 * x + c_crossattn.mean(dim=(1, 2))[:, None, None, None] + 0.1 * t[:, None, None, None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default="/work/main/.peer")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "condmask", "golden_condmask.safetensors"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "cpu"))
    import cpu_comfy
    cpu_comfy.setup(args.peer)
    import torch
    import comfy.conds
    import comfy.model_sampling as cms
    import comfy.samplers as cs
    from safetensors.torch import save_file

    class MS(cms.ModelSamplingDiscrete, cms.EPS):
        pass

    class Patcher:
        def prepare_state(self, timestep):
            pass

        def apply_hooks(self, hooks):
            return {}

    class ToyModel:
        model_sampling = MS()
        current_patcher = Patcher()

        def memory_required(self, shape):
            return 0

        def apply_model(self, x, t, **c):
            return toy_apply(x, t, **c)

    model = ToyModel()
    g = torch.Generator().manual_seed(20)
    tensors = {}

    def ctx(name, length, dim=8):
        t = torch.randn((1, length, dim), generator=g)
        tensors[name] = t
        return t

    def mask(name, shape, box=None):
        m = torch.rand(shape, generator=g)
        if box is not None:  # zero outside rows y0:y1, columns x0:x1
            z = torch.zeros(shape)
            y0, y1, x0, x1 = box
            z[..., y0:y1, x0:x1] = m[..., y0:y1, x0:x1]
            m = z
        tensors[name] = m
        return m

    # Each entry: {"context": name, optional "area": [h, w, y, x] pixels, "area_percent": [h, w, y, x],
    # "strength", "mask": name, "mask_strength", "set_area_to_bounds", "start_percent", "end_percent"}.
    cases = []
    cases.append({"name": "mask_default", "batch": 2, "h": 24, "w": 32,
                  "positive": [{"context": "c0.p0"},
                               {"context": "c0.p1", "mask": "c0.m1", "mask_strength": 0.8, "strength": 0.7}],
                  "negative": [{"context": "c0.n0"}]})
    ctx("c0.p0", 77); ctx("c0.p1", 77); ctx("c0.n0", 77); mask("c0.m1", (1, 60, 80))
    cases.append({"name": "mask_bounds_rows", "batch": 4, "h": 16, "w": 24,
                  "positive": [{"context": "c1.p0"},
                               {"context": "c1.p1", "mask": "c1.m1", "mask_strength": 1.3,
                                "set_area_to_bounds": True}],
                  "negative": [{"context": "c1.n0", "mask": "c1.m2", "set_area_to_bounds": True}]})
    ctx("c1.p0", 77); ctx("c1.p1", 154); ctx("c1.n0", 77)
    mask("c1.m1", (2, 16, 24), box=(3, 9, 10, 13)); mask("c1.m2", (1, 32, 48), box=(26, 32, 0, 6))
    cases.append({"name": "timestep_ranges", "batch": 2, "h": 16, "w": 16,
                  "positive": [{"context": "c2.p0", "start_percent": 0.0, "end_percent": 0.4},
                               {"context": "c2.p1", "start_percent": 0.4, "end_percent": 1.0, "strength": 0.6}],
                  "negative": [{"context": "c2.n0", "start_percent": 0.2, "end_percent": 0.9},
                               {"context": "c2.n1"}]})
    ctx("c2.p0", 77); ctx("c2.p1", 77); ctx("c2.n0", 77); ctx("c2.n1", 77)
    cases.append({"name": "area_percent", "batch": 1, "h": 24, "w": 40,
                  "positive": [{"context": "c3.p0"},
                               {"context": "c3.p1", "area_percent": [0.5, 0.75, 0.25, 0.125], "strength": 0.9}],
                  "negative": [{"context": "c3.n0"},
                               {"context": "c3.n1", "area_percent": [0.5, 0.5, 0.3125, 0.0625]}]})
    ctx("c3.p0", 77); ctx("c3.p1", 77); ctx("c3.n0", 77); ctx("c3.n1", 77)
    cases.append({"name": "area_and_mask", "batch": 2, "h": 24, "w": 32,
                  "positive": [{"context": "c4.p0"},
                               {"context": "c4.p1", "area": [96, 128, 64, 64], "mask": "c4.m1", "strength": 1.5,
                                "start_percent": 0.1, "end_percent": 0.8}],
                  "negative": [{"context": "c4.n0"}]})
    ctx("c4.p0", 77); ctx("c4.p1", 77); ctx("c4.n0", 77); mask("c4.m1", (2, 48, 64))

    sigmas = [14.6146, 8.0, 3.5, 1.2, 0.3, 0.03]
    tensors["sigmas"] = torch.tensor(sigmas, dtype=torch.float32)
    percent_to_sigma = {str(p): model.model_sampling.percent_to_sigma(p)
                        for p in [0.0, 0.1, 0.2, 0.4, 0.8, 0.9, 1.0, 0.333]}

    def comfy_entry(e):
        d = {"model_conds": {"c_crossattn": comfy.conds.CONDCrossAttn(tensors[e["context"]])}, "uuid": None}
        if "area" in e:
            h, w, y, x = e["area"]
            d["area"] = (h // 8, w // 8, y // 8, x // 8)
            d["set_area_to_bounds"] = False
        if "area_percent" in e:
            d["area"] = ("percentage",) + tuple(e["area_percent"])
            d["set_area_to_bounds"] = False
        if "strength" in e:
            d["strength"] = e["strength"]
        if "mask" in e:
            d["mask"] = tensors[e["mask"]]
            d["mask_strength"] = e.get("mask_strength", 1.0)
            d["set_area_to_bounds"] = e.get("set_area_to_bounds", False)
        for k in ("start_percent", "end_percent"):
            if k in e:
                d[k] = e[k]
        return d

    for ci, case in enumerate(cases):
        dims = (case["h"], case["w"])
        conds = {"positive": [comfy_entry(e) for e in case["positive"]],
                 "negative": [comfy_entry(e) for e in case["negative"]]}
        for k in conds:  # process_conds' steps that concern these keys, in its order
            cs.resolve_areas_and_cond_masks_multidim(conds[k], dims, "cpu")
            cs.calculate_start_end_timesteps(model, conds[k])
        for k in conds:
            for c in conds[k]:
                for kk in conds:
                    if k != kk:
                        cs.create_cond_with_same_area_if_none(conds[kk], c)
        case["resolved_areas"] = {k: [list(int(v) for v in c["area"]) if "area" in c else None for c in conds[k]]
                                  for k in conds}
        x = torch.randn((case["batch"], 4) + dims, generator=g)
        tensors["c%d.x" % ci] = x
        for si, s in enumerate(sigmas):
            if case["name"] not in ("timestep_ranges", "area_and_mask") and si != 2:
                continue  # one sigma is enough where no entry has a timestep range
            t = torch.full((case["batch"],), s, dtype=torch.float32)
            out = cs.calc_cond_batch(model, [conds["positive"], conds["negative"]], x, t, {})
            tensors["c%d.s%d.pos" % (ci, si)] = out[0].contiguous()
            tensors["c%d.s%d.neg" % (ci, si)] = out[1].contiguous()
        case["prefix"] = "c%d" % ci

    meta = {"cases": json.dumps(cases), "percent_to_sigma": json.dumps(percent_to_sigma),
            "generator": "tools/parity/condmask_golden.py", "torch": torch.__version__}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, args.out, metadata=meta)
    print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
