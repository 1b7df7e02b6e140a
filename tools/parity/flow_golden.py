#!/usr/bin/env python3
"""Golden data for the flow-matching model sampling of src/engine/sampling, from ComfyUI's own code.

Needs torch, numpy and scipy (the GPU machine has them; torchsde and trampoline come from .peer/pylib).
Everything runs on the CPU. Writes golden_flow.json, which netdist_parity_tests' FlowGolden.* compare against
(tests/parity/run_gpu_parity.sh's goldens step makes it into a copy of tests/data each run; not committed):
  - the sigma tables of ModelSamplingSD3 (shift 3, 1, 6), ModelSamplingAuraFlow (1.73) and ModelSamplingFlux
    (shift 1.15 and 0.63; every 7th entry and the last of its 10000) as the nodes of
    comfy_extras/nodes_model_advanced.py build them;
  - KSampler.set_steps sigmas for every scheduler × {20 steps, denoise 1 / 0.5} × {euler, dpm_2} on SD3 shift 3,
    and BasicScheduler's for 20 steps at denoise 1 and 0.6;
  - CONST noise_scaling / inverse_noise_scaling / calculate_denoised on fixed tensors;
  - every implemented sampler run on a toy denoiser D(x, σ) = x·(1 − σ)/(1 + σ²) on the SD3 shift-3 model
    sampling (so euler_ancestral, dpm_2_ancestral and dpmpp_2s_ancestral take their _RF branches) along an
    8-step simple schedule, from x = randn (seed 0), per-step noise seed 42.

Usage (from the repository root): python3 tools/parity/flow_golden.py [--peer .peer] [--out PATH]
"""
import argparse
import json
import os
import sys


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=os.path.join(root, ".peer"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "sampling", "golden_flow.json"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.peer, "pylib"))
    sys.path.insert(0, os.path.join(args.peer, "ComfyUI"))

    import numpy
    import scipy
    import torch
    import comfy.model_sampling as cms
    import comfy.samplers as cs

    class Flow(cms.ModelSamplingDiscreteFlow, cms.CONST):
        pass

    class Flux(cms.ModelSamplingFlux, cms.CONST):
        pass

    def flow(shift, multiplier=1000):
        ms = Flow(None)
        ms.set_parameters(shift=shift, multiplier=multiplier)
        return ms

    def flux(shift):
        ms = Flux(None)
        ms.set_parameters(shift=shift)
        return ms

    def floats(t):
        return [float(v) for v in t.flatten()]

    out = {"versions": {"torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__},
           "tables": []}
    for kind, shift, multiplier in (("sd3", 3.0, 1000), ("sd3", 1.0, 1000), ("sd3", 6.0, 1000),
                                    ("auraflow", 1.73, 1.0)):
        ms = flow(shift, multiplier)
        out["tables"].append({"kind": "discrete_flow", "shift": shift, "multiplier": float(multiplier), "every": 1,
                              "sigmas": floats(ms.sigmas)})
    for shift in (1.15, 0.63):
        ms = flux(shift)
        picked = torch.cat([ms.sigmas[::7], ms.sigmas[-1:]])
        out["tables"].append({"kind": "flux", "shift": shift, "multiplier": 1.0, "every": 7, "sigmas": floats(picked)})

    ms = flow(3.0)

    class FakeModel:
        def get_model_object(self, name):
            assert name == "model_sampling"
            return ms

    out["schedules"] = []
    for scheduler in cs.SCHEDULER_NAMES:
        for sampler in ("euler", "dpm_2"):
            for steps, denoise in ((20, 1.0), (20, 0.5), (7, 1.0)):
                ks = cs.KSampler.__new__(cs.KSampler)
                ks.model, ks.device, ks.scheduler, ks.sampler = FakeModel(), "cpu", scheduler, sampler
                ks.set_steps(steps, denoise)
                out["schedules"].append({"scheduler": scheduler, "sampler": sampler, "steps": steps,
                                         "denoise": denoise, "sigmas": floats(ks.sigmas)})
    from comfy_extras import nodes_custom_sampler as ncs
    out["basic_scheduler"] = []
    for scheduler in cs.SCHEDULER_NAMES:
        for denoise in (1.0, 0.6):
            (sig,) = ncs.BasicScheduler().get_sigmas(FakeModel(), scheduler, 20, denoise)
            out["basic_scheduler"].append({"scheduler": scheduler, "steps": 20, "denoise": denoise,
                                           "sigmas": floats(sig)})

    shape = [2, 4, 8, 8]
    gen = torch.manual_seed(0)
    noise = torch.randn(shape, generator=gen)
    latent = torch.randn(shape, generator=gen)
    sigma = torch.tensor(0.6)
    noised = ms.noise_scaling(sigma, noise, latent, max_denoise=True)
    out["const"] = {"x_seed": 0, "shape": shape, "sigma": 0.6, "noised": floats(noised),
                    "inverse": floats(ms.inverse_noise_scaling(sigma, noised)),
                    "denoised": floats(ms.calculate_denoised(sigma.view(1).expand(2), noise, latent))}

    class Inner:
        model_sampling = ms

    class Wrapped:
        inner_model = Inner()

    class ToyDenoiser:
        inner_model = Wrapped()

        def __call__(self, x, sigma, **kwargs):
            s = sigma.view(-1, 1, 1, 1)
            return x * (1 - s) / (s ** 2 + 1)

    x0 = torch.randn(shape, generator=torch.manual_seed(0))
    out["toy"] = {"seed": 42, "x_seed": 0, "shape": shape, "runs": []}
    sig = cs.calculate_sigmas(ms, "simple", 8)
    for name in cs.SAMPLER_NAMES:
        if name in ("dpm_fast", "dpm_adaptive") or "cfg_pp" in name:
            continue
        sampler = cs.sampler_object(name)
        try:
            result = sampler.sampler_function(ToyDenoiser(), x0.clone(), sig.clone(), extra_args={"seed": 42},
                                              callback=None, disable=True, **sampler.extra_options)
        except Exception as e:  # a sampler this ComfyUI cannot run on the toy model
            print(f"skip {name}: {e}", file=sys.stderr)
            continue
        out["toy"]["runs"].append({"sampler": name, "sigmas": floats(sig), "values": floats(result)})

    with open(args.out, "w") as f:
        f.write(json.dumps(out).replace("NaN", "null"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
