#!/usr/bin/env python3
"""Checks cpu_comfy's pure-Python CLIP tokenizer through ComfyUI's own SDTokenizer / SDXLClipGTokenizer against
the goldens that ComfyUI's real tokenizer (transformers) made on the GPU machine: every prompt of
tests/data/tokenizer/golden_sd1.json, clip_l and clip_g, token ids and weights identical.

    /usr/bin/python3 tools/parity/cpu/check_tokenizer.py [--peer .peer]

Exits 1 naming the first prompts that differ.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_comfy  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--golden", default="tests/data/tokenizer/golden_sd1.json")
    ap.add_argument("--vocab", default="tests/data/clip-vit-l-14-tokenizer")
    a = ap.parse_args()
    cpu_comfy.setup(a.peer)
    from comfy import sd1_clip, sdxl_clip

    vocab = os.path.abspath(a.vocab)
    tokenizers = {"clip_l": sd1_clip.SDTokenizer(tokenizer_path=vocab),
                  "clip_g": sdxl_clip.SDXLClipGTokenizer(tokenizer_path=vocab)}
    golden = json.load(open(a.golden, encoding="utf-8"))
    checked, bad = 0, []
    for name, tok in tokenizers.items():
        for prompt, want in golden[name].items():
            got = [[[int(t), float(w)] for t, w in window] for window in tok.tokenize_with_weights(prompt)]
            checked += 1
            if got != want:
                bad.append((name, prompt))
    print(f"cpu tokenizer: {checked - len(bad)}/{checked} prompts identical to ComfyUI's goldens")
    for name, prompt in bad[:10]:
        print(f"  differs: {name} {prompt!r}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
