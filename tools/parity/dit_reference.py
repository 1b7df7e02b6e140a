"""GPU parity data for netdist's MMDiT and Flux: the pinned ComfyUI's own classes at real widths (SD3 Medium,
SD3.5 Medium, SD3.5 Large, Flux dev, Flux schnell: real hidden sizes, heads, MLP, context and pooled widths,
positional tables) with few blocks (3 joint blocks; Flux 2 double + 4 single) so every case builds and runs in
seconds, random weights (N(0, 0.02²)), in the dtype ComfyUI runs them in on a GPU (MMDiT fp16, Flux bf16), one
forward at 1024² (latent 128×128, batch 2) on CUDA.

    python3 tools/parity/dit_reference.py --peer .peer --out /tmp/netdist-parity/dit

Writes per case <name>.safetensors (weights, ComfyUI's names, in the run dtype) and <name>_io.safetensors
(fp32 inputs x_0, timesteps_0, context_0, y_0[, guidance_0] and ComfyUI's output out_0), read by
netdist_parity_tests ParityDiT.* (src/engine/dit/dit_parity_test.cpp) with NETDIST_DIT_PARITY_DATA set;
tests/parity/run_gpu_parity.sh step `dit` runs both.
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dit_goldens import MMDIT_REAL, FLUX_REAL  # noqa: E402

CASES = {
    "sd3": ("mmdit", dict(MMDIT_REAL["sd3"], num_blocks=3), torch.float16, 154),
    "sd35m": ("mmdit", dict(MMDIT_REAL["sd35m"], num_blocks=3, x_block_self_attn_layers=[0, 1]), torch.float16, 154),
    "sd35l": ("mmdit", dict(MMDIT_REAL["sd35l"], num_blocks=3), torch.float16, 154),
    "flux_dev": ("flux", dict(FLUX_REAL["flux_dev"], depth=2, depth_single_blocks=4), torch.bfloat16, 256),
    "flux_schnell": ("flux", dict(FLUX_REAL["flux_schnell"], depth=2, depth_single_blocks=4), torch.bfloat16, 256),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    peer = os.path.abspath(args.peer)
    sys.path[:0] = [os.path.join(peer, "ComfyUI"), os.path.join(peer, "pylib")]
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper
    from comfy.ldm.flux.model import Flux
    from safetensors.torch import save_file
    ops = comfy.ops.disable_weight_init
    os.makedirs(args.out, exist_ok=True)
    dev = torch.device(args.device)
    for i, name in enumerate(args.cases.split(",")):
        kind, cfg, dtype, ctx_len = CASES[name]
        g = torch.Generator().manual_seed(1000 + i)
        if kind == "mmdit":
            model = OpenAISignatureMMDITWrapper(**cfg, dtype=dtype, device=dev, operations=ops).eval()
            ctx_dim, y_dim = 4096, 2048
        else:
            model = Flux(**cfg, dtype=dtype, device=dev, operations=ops).eval()
            ctx_dim, y_dim = 4096, 768
        sd = {}
        for k, t in model.state_dict().items():
            v = torch.randn(t.shape, generator=g) * 0.02
            if k.endswith(".scale") or k.endswith("ln_q.weight") or k.endswith("ln_k.weight"):
                v = 1.0 + v
            if k == "pos_embed":
                v = torch.randn(t.shape, generator=g) * 0.5
            sd[k] = v.to(dtype)
        model.load_state_dict({k: v.to(dev) for k, v in sd.items()}, strict=True)
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(args.out, name + ".safetensors"))
        b = 2
        x = torch.randn(b, 16, 128, 128, generator=g)
        ctx = torch.randn(b, ctx_len, ctx_dim, generator=g)
        y = torch.randn(b, y_dim, generator=g)
        io = {"x_0": x, "context_0": ctx, "y_0": y}
        with torch.no_grad():
            if kind == "mmdit":
                t = torch.tensor([999.0, 421.5])
                out = model(x.to(dev, dtype), t.to(dev), context=ctx.to(dev, dtype), y=y.to(dev, dtype))
            else:
                t = torch.tensor([1.0, 0.4215])
                guidance = torch.tensor([3.5, 3.5]) if cfg["guidance_embed"] else None
                if guidance is not None:
                    io["guidance_0"] = guidance
                out = model(x.to(dev, dtype), t.to(dev), context=ctx.to(dev, dtype), y=y.to(dev, dtype),
                            guidance=None if guidance is None else guidance.to(dev))
        io["timesteps_0"] = t
        io["out_0"] = out.float().cpu()
        save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(args.out, name + "_io.safetensors"))
        print(name, "written", tuple(out.shape), str(dtype))
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
