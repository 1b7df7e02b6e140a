#!/usr/bin/env python3
"""Golden data for src/engine/sampling from ComfyUI's own code (the pinned checkout in .peer/).

Needs torch, numpy and scipy (the GPU machine has them; torchsde and trampoline come from .peer/pylib).
Everything runs on the CPU. Writes tests/data/sampling/golden_comfy.json, which the sampling tests compare
against when it exists:
  - the discrete sigma / log-sigma tables (ModelSamplingDiscrete, eps);
  - KSampler.set_steps sigmas for every scheduler × {20 steps, denoise 1 / 0.5 / 0.37} × {euler, dpm_2};
  - lms coefficients (linear_multistep_coeff) along a karras schedule;
  - Brownian-tree noise (BrownianTreeNoiseSampler, cpu=True) for a fixed seed;
  - every implemented sampler run on a toy denoiser D(x, σ) = x / (1 + σ²) from x = randn·σ0.

Usage (from the repository root): python3 tools/parity/sampling_golden.py [--peer .peer] [--out PATH]
"""
import argparse
import json
import os
import sys


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=os.path.join(root, ".peer"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "sampling", "golden_comfy.json"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.peer, "pylib"))
    sys.path.insert(0, os.path.join(args.peer, "ComfyUI"))

    import numpy
    import scipy
    import torch
    import comfy.model_sampling as cms
    import comfy.samplers as cs
    from comfy.extra_samplers import uni_pc
    from comfy.k_diffusion import sampling as kd

    class ModelSampling(cms.ModelSamplingDiscrete, cms.EPS):
        pass

    ms = ModelSampling()

    class FakeModel:
        def get_model_object(self, name):
            assert name == "model_sampling"
            return ms

    def set_steps(scheduler, sampler, steps, denoise):
        ks = cs.KSampler.__new__(cs.KSampler)
        ks.model, ks.device, ks.scheduler, ks.sampler = FakeModel(), "cpu", scheduler, sampler
        ks.set_steps(steps, denoise)
        return ks.sigmas

    out = {
        "versions": {"torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__},
        "sigmas": [float(v) for v in ms.sigmas],
        "log_sigmas": [float(v) for v in ms.log_sigmas],
        "cases": [],
    }
    for scheduler in cs.SCHEDULER_NAMES:
        for sampler in ("euler", "dpm_2"):
            for steps, denoise in ((20, 1.0), (20, 0.5), (13, 0.37), (1, 1.0), (7, 1.0)):
                sig = set_steps(scheduler, sampler, steps, denoise)
                out["cases"].append({"scheduler": scheduler, "sampler": sampler, "steps": steps,
                                     "denoise": denoise, "sigmas": [float(v) for v in sig]})
    out["scheduler_names"] = list(cs.SCHEDULER_NAMES)
    out["sampler_names"] = list(cs.SAMPLER_NAMES)

    karras = set_steps("karras", "lms", 10, 1.0)
    t = karras.detach().cpu().numpy()
    out["lms"] = []
    for i in range(len(t) - 1):
        order = min(i + 1, 4)
        for j in range(order):
            out["lms"].append({"t": [float(v) for v in t], "order": order, "i": i, "j": j,
                               "coeff": float(kd.linear_multistep_coeff(order, t, i, j))})

    shape = [2, 4, 8, 8]
    sigmas = set_steps("karras", "euler", 8, 1.0)
    ns = kd.BrownianTreeNoiseSampler(torch.zeros(shape), sigmas[sigmas > 0].min(), sigmas.max(), seed=42, cpu=True)
    out["brownian"] = {"seed": 42, "shape": shape, "sigmas": [float(v) for v in sigmas], "queries": []}
    for i in range(len(sigmas) - 2):
        for a, b in ((sigmas[i], sigmas[i + 1]), (sigmas[i + 1], sigmas[i])):
            w = ns(a, b)
            out["brownian"]["queries"].append({"sigma": float(a), "sigma_next": float(b),
                                               "values": [float(v) for v in w.flatten()]})

    class Inner:
        model_sampling = ms

    class Wrapped:
        inner_model = Inner()

    class ToyDenoiser:
        inner_model = Wrapped()

        def __call__(self, x, sigma, **kwargs):
            return x / (sigma.view(-1, 1, 1, 1) ** 2 + 1)

    x0 = torch.randn(shape, generator=torch.manual_seed(0)) * float(ms.sigma_max)
    out["toy"] = {"seed": 42, "x_seed": 0, "shape": shape, "runs": []}
    for name in cs.SAMPLER_NAMES:
        if name in ("dpm_fast", "dpm_adaptive") or "cfg_pp" in name:
            continue
        sig = set_steps("karras", name, 8, 1.0)
        sampler = cs.sampler_object(name)
        try:
            result = sampler.sampler_function(ToyDenoiser(), x0.clone(), sig.clone(), extra_args={"seed": 42},
                                              callback=None, disable=True, **sampler.extra_options)
        except Exception as e:  # a sampler this ComfyUI cannot run on the toy model
            print(f"skip {name}: {e}", file=sys.stderr)
            continue
        out["toy"]["runs"].append({"sampler": name, "sigmas": [float(v) for v in sig],
                                   "values": [float(v) for v in result.flatten()]})

    with open(args.out, "w") as f:
        f.write(json.dumps(out).replace("NaN", "null"))  # kl_optimal with 1 step divides 0 by 0
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
