#!/usr/bin/env python3
"""Golden data for netdist's textual-inversion embeddings, made by the pinned ComfyUI's own code on the CPU
(tools/parity/cpu/cpu_comfy.py):
  - comfy/sd1_clip.py SDTokenizer.tokenize_with_weights with embedding_directory = tests/data/embeddings/ti
    (load_embed: subfolders, extensions, keys, bundles) — its text tokenizer is a stand-in that maps the
    plain lower-case words used here to their CLIP vocab ids (transformers is not installed here; netdist's
    tokenizer is checked against the real one by tests/data/tokenizer/golden_sd1.json), so only the
    embedding handling is ComfyUI's;
  - comfy/sd1_clip.py SDClipModel.encode_token_weights (set_up_textual_embeddings: embedding vectors in place
    of token embeddings, width mismatches dropped, ComfyUI's weighting) on two tiny random CLIPs
    (comfy.clip_model.CLIPTextModel): "l" (width 32, pad with end, layer last, key clip_l) and "g" (width 48,
    pad 0, penultimate layer without final norm, key clip_g).
Writes tests/data/embeddings/ti/** (the embedding files) and tests/data/embeddings/golden_embeddings.safetensors
(used token-embedding rows, the other weights, per case the token list and ComfyUI's hidden states and pooled
output; the cases as JSON metadata). src/engine/text/embeddings_test.cpp compares.

Usage (repository root): python3 tools/parity/embeddings_golden.py [--peer /work/main/.peer]
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data", "embeddings")
VOCAB = os.path.join(ROOT, "tests", "data", "clip-vit-l-14-tokenizer", "vocab.json")

CASES = [
    ("l", "a photo of embedding:sd1emb cat"),
    ("l", "(embedding:both:1.2), a cat"),
    ("l", "a embedding:nested, cat"),
    ("l", "embedding:sub/nested.safetensors cat"),
    ("l", "a embedding:missing cat"),
    ("l", "embedding:bundle dog"),
    ("l", " ".join(["a"] * 70) + " embedding:big cat"),
    ("g", "a embedding:both cat"),
    ("g", "a embedding:sd1emb cat"),
    ("g", "(a embedding:sd1emb:0.8) cat"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default="/work/main/.peer")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "cpu"))
    import cpu_comfy
    cpu_comfy.setup(args.peer)
    import torch
    import comfy.clip_model
    import comfy.sd1_clip as sd1
    from safetensors.torch import save_file

    vocab = json.load(open(VOCAB, encoding="utf-8"))

    class WordTokenizer:
        """The CLIP tokenizer for plain lower-case words and commas: '<word></w>' ids."""

        @classmethod
        def from_pretrained(cls, path):
            return cls()

        def __call__(self, text):
            words = re.findall(r"[a-z]+|,", text.lower())
            return {"input_ids": [49406] + [vocab[w + "</w>"] for w in words] + [49407]}

        def get_vocab(self):
            return vocab

    g = torch.Generator().manual_seed(7)
    ti = os.path.join(DATA, "ti")
    os.makedirs(os.path.join(ti, "sub"), exist_ok=True)
    save_file({"emb_params": torch.randn((3, 32), generator=g)}, os.path.join(ti, "sd1emb.safetensors"))
    save_file({"clip_l": torch.randn((2, 32), generator=g), "clip_g": torch.randn((2, 48), generator=g)},
              os.path.join(ti, "both.safetensors"))
    save_file({"emb": torch.randn((32,), generator=g).half()}, os.path.join(ti, "sub", "nested.safetensors"))
    save_file({"bundle_emb.x.string_to_param.*": torch.randn((1, 32), generator=g),
               "bundle_emb.y.string_to_param.*": torch.randn((2, 32), generator=g),
               "lora_unet_a.weight": torch.randn((2, 2), generator=g)}, os.path.join(ti, "bundle.safetensors"))
    save_file({"string_to_param.*": torch.randn((10, 32), generator=g)}, os.path.join(ti, "big.safetensors"))

    encoders = {
        "l": dict(width=32, heads=2, layers=3, act="quick_gelu", pad=49407, pad_with_end=True, key="clip_l",
                  layer="last", layer_idx=None, norm=True),
        "g": dict(width=48, heads=2, layers=3, act="gelu", pad=0, pad_with_end=False, key="clip_g",
                  layer="hidden", layer_idx=-2, norm=False),
    }
    models, tokenizers, tensors = {}, {}, {}
    used_ids = sorted({49406, 49407, 0} | {vocab[w + "</w>"] for w in ["a", "photo", "of", "cat", "dog", ","]})
    tensors["used_ids"] = torch.tensor(used_ids, dtype=torch.int64)
    for name, e in encoders.items():
        config = {"num_hidden_layers": e["layers"], "hidden_size": e["width"], "num_attention_heads": e["heads"],
                  "intermediate_size": 2 * e["width"], "hidden_act": e["act"], "max_position_embeddings": 77,
                  "eos_token_id": 49407, "vocab_size": 49408}
        m = sd1.SDClipModel(layer=e["layer"], layer_idx=e["layer_idx"], textmodel_json_config=config,
                            special_tokens={"start": 49406, "end": 49407, "pad": e["pad"]},
                            layer_norm_hidden_state=e["norm"], return_projected_pooled=False)
        sd = {}
        with torch.no_grad():
            for k, v in m.transformer.state_dict().items():
                if k.endswith("token_embedding.weight"):
                    v.zero_()
                    v[used_ids] = torch.randn((len(used_ids), v.shape[1]), generator=g) * 0.5
                    tensors[name + ".token_rows"] = v[used_ids].clone()
                    continue
                if "layer_norm" in k and k.endswith("weight"):
                    v.copy_(1.0 + 0.1 * torch.randn(v.shape, generator=g))
                else:
                    v.copy_(0.2 * torch.randn(v.shape, generator=g))
                sd[k] = v.clone()
        for k, v in sd.items():
            tensors[name + "." + k] = v
        models[name] = m
        tokenizers[name] = sd1.SDTokenizer(tokenizer_class=WordTokenizer, embedding_directory=ti,
                                           embedding_size=e["width"], embedding_key=e["key"],
                                           pad_with_end=e["pad_with_end"])

    cases = []
    for i, (enc, prompt) in enumerate(CASES):
        tokens = tokenizers[enc].tokenize_with_weights(prompt)
        ids, weights, emb_pos, emb_vals = [], [], [], []
        for w, window in enumerate(tokens):
            for j, (t, wt) in enumerate(window):
                weights.append(float(wt))
                if isinstance(t, int):
                    ids.append(t)
                else:
                    ids.append(0)
                    emb_pos.append(w * 77 + j)
                    emb_vals.append(t.float().reshape(-1))
        with torch.no_grad():
            hidden, pooled = models[enc].encode_token_weights(tokens)[:2]
        p = "c%d." % i
        tensors[p + "ids"] = torch.tensor(ids, dtype=torch.int64)
        tensors[p + "weights"] = torch.tensor(weights, dtype=torch.float32)
        tensors[p + "hidden"] = hidden.float().contiguous()
        tensors[p + "pooled"] = pooled.float().contiguous()
        for k, (pos, val) in enumerate(zip(emb_pos, emb_vals)):
            tensors[p + "emb%d" % k] = val
        cases.append({"encoder": enc, "prompt": prompt, "windows": len(tokens), "embedding_positions": emb_pos})

    meta = {"cases": json.dumps(cases), "encoders": json.dumps(encoders),
            "generator": "tools/parity/embeddings_golden.py", "torch": torch.__version__}
    out = os.path.join(DATA, "golden_embeddings.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, out, metadata=meta)
    print("wrote", out, os.path.getsize(out), "bytes")
    for c in cases:
        print(c["encoder"], repr(c["prompt"][:60]), c["windows"], c["embedding_positions"])


if __name__ == "__main__":
    main()
