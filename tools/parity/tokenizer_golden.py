#!/usr/bin/env python3
"""Golden CLIP token windows from ComfyUI's own tokenizer, for src/engine/text/tokenizer_golden_test.cpp.

Needs `transformers` (and torch, which comfy.sd1_clip imports) plus a ComfyUI source tree. Run from the
repository root:

    python3 tools/parity/tokenizer_golden.py > tests/data/tokenizer/golden_sd1.json

Each line of the prompts file is one prompt, taken verbatim (a blank line is the empty prompt). Output:
{"meta": {...}, "clip_l": {prompt: [[[id, weight], ...77], ...windows]}, "clip_g": {...}} where clip_l is
SDTokenizer (pads with the end token) and clip_g SDXLClipGTokenizer (pads with 0), both reading --vocab.
"""
import argparse
import json
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", default=".peer/ComfyUI", help="ComfyUI source tree")
    parser.add_argument("--vocab", default="tests/data/clip-vit-l-14-tokenizer", help="vocab.json + merges.txt dir")
    parser.add_argument("--prompts", default="tests/data/tokenizer/prompts.txt")
    args = parser.parse_args()

    sys.path.insert(0, os.path.abspath(args.comfyui))
    import transformers
    from comfy import sd1_clip, sdxl_clip

    vocab_dir = os.path.abspath(args.vocab)
    clip_l = sd1_clip.SDTokenizer(tokenizer_path=vocab_dir)
    clip_g = sdxl_clip.SDXLClipGTokenizer(tokenizer_path=vocab_dir)

    with open(args.prompts, encoding="utf-8", newline="") as f:
        prompts = f.read().split("\n")
    if prompts and prompts[-1] == "":
        prompts.pop()

    def windows(tokenizer, prompt):
        return [[[int(t), float(w)] for t, w in window] for window in tokenizer.tokenize_with_weights(prompt)]

    hf = clip_l.tokenizer
    meta = {
        "transformers": transformers.__version__,
        "tokenizer_class": f"{type(hf).__module__}.{type(hf).__name__}",
        "ftfy": getattr(hf, "fix_text", None) is not None,
        "python": sys.version.split()[0],
    }
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is not None:
        meta["normalizer"] = repr(backend.normalizer)
        meta["pre_tokenizer"] = repr(backend.pre_tokenizer)
    out = {
        "meta": meta,
        "clip_l": {p: windows(clip_l, p) for p in prompts},
        "clip_g": {p: windows(clip_g, p) for p in prompts},
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
