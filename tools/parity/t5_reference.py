#!/usr/bin/env python3
"""Reference data for src/engine/text/t5_parity_test.cpp (netdist_parity_tests, ParityT5.*): ComfyUI's own T5
tokenizer and T5 encoder classes, run by the pinned ComfyUI on the GPU machine.

    python3 tools/parity/t5_reference.py --comfyui .peer/ComfyUI --out DIR [--device cuda]

Writes into DIR:
  tokens.json              {"meta": versions, "prompts": [...], "sd3": [...], "flux": [...]}: for every prompt,
                           T5XXLTokenizer.tokenize_with_weights of comfy/text_encoders/sd3_clip.py (min_length 77)
                           and of comfy/text_encoders/flux.py (min_length 256), as [[[id, weight], ...], ...]. The
                           prompts are tests/data/tokenizer/golden_t5.json's (NFKC, combining marks, added tokens,
                           random strings) plus weighted and long prompts.
  t5_tiny_fp32.safetensors / t5_tiny_fp16.safetensors
                           a random-weight comfy.text_encoders.t5.T5 of reduced size (4 layers, d_model 256,
                           4 heads of 64, d_ff 512, vocab 32128, gated GELU, as t5_config_xxl.json otherwise),
                           its state dict with ComfyUI's key names (the fp16 file is the same weights rounded)
  cases.safetensors        ids_<n> [1, L] int64 (tokens of five prompts: L = 77, 256, ~1450), mask_<n> [1, L] (the
                           attention mask SDClipModel builds when t5_attention_mask is on), and the outputs:
                           out_<n>_<fp32|fp16> (no mask) and outm_<n>_<fp32|fp16> (with the mask), float32 [1, L, 256]
The encoder runs the way SDClipModel runs T5-XXL: comfy.ops.manual_cast operations, weights stored in the file's
dtype, embeddings and compute in float32 (dtype=torch.float32), on --device.
"""
import argparse
import json
import os
import sys

CONFIG = {"d_ff": 512, "d_kv": 64, "d_model": 256, "num_heads": 4, "num_layers": 4, "vocab_size": 32128,
          "dense_act_fn": "gelu_pytorch_tanh", "is_gated_act": True, "model_type": "t5"}
EXTRA_PROMPTS = ["(red:1.5) cat, (dog)", "a ((very)) [detailed] photo of (a cat:1.2) on a (mat:0.8)",
                 "\\(escaped\\) (nested (weights:1.3) here:0.9)", "embedding:none a cat",
                 "a red cat on a blue mat, " * 120]


def comfy_attention_mask(tokens, end_token):
    """comfy/sd1_clip.py SDClipModel.forward's mask: ones up to and including the first end token."""
    import torch
    mask = torch.zeros_like(tokens)
    for x in range(mask.shape[0]):
        for y in range(mask.shape[1]):
            mask[x, y] = 1
            if tokens[x, y] == end_token:
                break
    return mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--golden", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data",
                                                     "tokenizer", "golden_t5.json"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.comfyui))
    os.makedirs(args.out, exist_ok=True)
    import torch
    import transformers
    import tokenizers
    from safetensors.torch import save_file
    import comfy.ops
    import comfy.text_encoders.flux
    import comfy.text_encoders.sd3_clip
    import comfy.text_encoders.t5

    # (a) the tokenizers
    with open(args.golden, encoding="utf-8") as f:
        prompts = json.load(f)["prompts"] + EXTRA_PROMPTS
    sd3 = comfy.text_encoders.sd3_clip.T5XXLTokenizer()
    flux = comfy.text_encoders.flux.T5XXLTokenizer()
    backend = getattr(sd3.tokenizer, "backend_tokenizer", None) or getattr(sd3.tokenizer, "_tokenizer", None)
    tokens = {
        "meta": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                 "torch": torch.__version__, "tokenizer_class": type(sd3.tokenizer).__module__ + "." +
                 type(sd3.tokenizer).__name__,
                 "normalizer": str(getattr(backend, "normalizer", None))[:300],
                 "pre_tokenizer": str(getattr(backend, "pre_tokenizer", None))[:300]},
        "prompts": prompts,
        "sd3": [[[[int(t), float(w)] for t, w in window] for window in sd3.tokenize_with_weights(p)] for p in prompts],
        "flux": [[[[int(t), float(w)] for t, w in window] for window in flux.tokenize_with_weights(p)] for p in prompts],
    }
    with open(os.path.join(args.out, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(tokens, f, ensure_ascii=False)
    print(json.dumps(tokens["meta"], indent=1))

    # (b) the encoder
    torch.manual_seed(19)
    model = comfy.text_encoders.t5.T5(CONFIG, torch.float32, "cpu", comfy.ops.manual_cast)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))
            elif name in ("shared.weight",) or "relative_attention_bias" in name:
                p.copy_(torch.randn(p.shape))
            else:
                p.copy_(torch.randn(p.shape) / p.shape[1] ** 0.5)
    sd32 = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd32, os.path.join(args.out, "t5_tiny_fp32.safetensors"))
    save_file({k: v.half() for k, v in sd32.items()}, os.path.join(args.out, "t5_tiny_fp16.safetensors"))

    cases = {}
    # short, a 20-token caption, a weighted prompt, a Flux window of 256, ~1450 tokens (buckets saturate)
    picks = [(0, "sd3"), (22, "sd3"), (len(prompts) - 4, "sd3"), (25, "flux"), (len(prompts) - 1, "sd3")]
    for n, (index, family) in enumerate(picks):
        window = tokens[family][index][0]
        ids = torch.tensor([[t for t, _ in window]], dtype=torch.long)
        cases[f"ids_{n}"] = ids
        cases[f"mask_{n}"] = comfy_attention_mask(ids, 1)
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        enc = comfy.text_encoders.t5.T5(CONFIG, dtype, args.device, comfy.ops.manual_cast)
        enc.load_state_dict({k: v.to(dtype) for k, v in sd32.items()})
        with torch.no_grad():
            for n in range(len(picks)):
                ids = cases[f"ids_{n}"].to(args.device)
                out, _ = enc(ids, None, intermediate_output=None, final_layer_norm_intermediate=True,
                             dtype=torch.float32)
                cases[f"out_{n}_{precision}"] = out.float().cpu()
                outm, _ = enc(ids, cases[f"mask_{n}"].to(args.device), intermediate_output=None,
                              final_layer_norm_intermediate=True, dtype=torch.float32)
                cases[f"outm_{n}_{precision}"] = outm.float().cpu()
    save_file({k: v.contiguous() for k, v in cases.items()}, os.path.join(args.out, "cases.safetensors"))
    print(f"t5_reference: {len(prompts)} prompts, {len(picks)} encoder cases on {args.device} -> {args.out}")


if __name__ == "__main__":
    main()
