"""Makes the pinned ComfyUI's own classes importable on this build machine's CPU torch (Debian python3-torch
1.13, `apt-get install python3-torch python3-numpy python3-scipy python3-yaml python3-pil python3-psutil
python3-tqdm`), so that CPU tests can carry goldens made by ComfyUI's code, not by ours.

    import sys; sys.path.insert(0, "tools/parity/cpu")
    import cpu_comfy
    cpu_comfy.setup("/work/main/.peer")   # the peer folder laid out by ../shared/peer/prepare.sh
    import comfy.ldm.flux.model ...

What it changes, only in this process:
  - torch.nn.functional.scaled_dot_product_attention on torch < 2.0 (the plain softmax(q kᵀ·scale) v, with
    ComfyUI's boolean or additive masks);
  - a pure-Python `safetensors` / `safetensors.torch` (load_file, save_file, safe_open) when the real
    package is missing: the file format is an 8-byte little-endian header length, a JSON header and the
    raw little-endian tensor bytes;
  - a `transformers` stand-in (ComfyUI imports its tokenizers at import time): CLIPTokenizer is ClipBpeTokenizer
    below, checked against the committed goldens of ComfyUI's real tokenizer (tests/data/tokenizer/golden_sd1.json,
    tools/parity/cpu/check_tokenizer.py); every other class raises when made;
  - torch.cuda.get_device_name answering "CPU (...)" (the reference scripts print the card);
  - ComfyUI's args.cpu = True, so comfy.model_management never asks for CUDA.
einops comes from PEER/pylib (fetch arogozhnikov/einops and copy its einops/ package there).
Numerics are fp32 CPU: goldens made here are compared with tight tolerances by the CPU tests; the GPU
parity rows (docs/parity.md) stay the fp16/bf16 check.
"""
import json
import os
import struct
import sys
import types

import torch
import torch.nn.functional as F

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    s = scale if scale is not None else q.shape[-1] ** -0.5
    w = (q @ k.transpose(-2, -1)) * s
    if is_causal:
        L, S = q.shape[-2], k.shape[-2]
        w = w.masked_fill(torch.ones(L, S, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            w = w.masked_fill(~attn_mask, float("-inf"))
        else:
            w = w + attn_mask
    return w.softmax(-1) @ v


def _read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return n, header


def load_file(path, device="cpu"):
    n, header = _read_header(path)
    out = {}
    with open(path, "rb") as f:
        data = f.read()[8 + n:]
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        b, e = meta["data_offsets"]
        dtype = _DTYPES[meta["dtype"]]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=dtype) if e > b else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(meta["shape"]).to(device)
    return out


def save_file(tensors, path, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


class safe_open:  # noqa: N801 (the real package's name)
    def __init__(self, path, framework="pt", device="cpu"):
        self._path, self._device = path, device
        self._n, self._header = _read_header(path)
        self._tensors = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def keys(self):
        return [k for k in self._header if k != "__metadata__"]

    def metadata(self):
        return self._header.get("__metadata__")

    def get_slice(self, name):
        meta = self._header[name]
        opener = self

        class _Slice:
            def get_shape(self):
                return list(meta["shape"])

            def get_dtype(self):
                return meta["dtype"]

            def __getitem__(self, index):
                return opener.get_tensor(name)[index]

        return _Slice()

    def get_tensor(self, name):
        if self._tensors is None:
            self._tensors = load_file(self._path, self._device)
        return self._tensors[name]


def _install_safetensors():
    try:
        import safetensors.torch  # noqa: F401
        return
    except ImportError:
        pass
    pkg = types.ModuleType("safetensors")
    pt = types.ModuleType("safetensors.torch")
    for name, fn in (("load_file", load_file), ("save_file", save_file), ("safe_open", safe_open)):
        setattr(pt, name, fn)
    pt.load = lambda data: (_ for _ in ()).throw(NotImplementedError("safetensors.torch.load(bytes)"))
    pkg.torch = pt
    pkg.safe_open = safe_open
    sys.modules["safetensors"] = pkg
    sys.modules["safetensors.torch"] = pt


def _bytes_to_unicode():
    """GPT-2's reversible byte → printable character table that byte-level BPE vocabularies are written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


class ClipBpeTokenizer:
    """CLIP's byte-level BPE as transformers' CLIPTokenizer (fast) applies it, in pure Python (needs `regex`):
    the special tokens <|startoftext|> and <|endoftext|> taken out of the raw text first (exact case, as
    added tokens); each other stretch NFC-normalised, runs of whitespace to one space, lowercased character by
    character (Σ → σ, never the final ς); split by the pattern below; bytes to GPT-2's characters; BPE with
    "</w>" on a word's last symbol; <|startoftext|> ... <|endoftext|> around it all. Only what ComfyUI's
    SDTokenizer calls: from_pretrained(dir), __call__(text)["input_ids"], get_vocab()."""

    _PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
    _SPECIAL = r"""(<\|startoftext\|>|<\|endoftext\|>)"""

    def __init__(self, path):
        import regex

        with open(os.path.join(path, "vocab.json"), encoding="utf-8") as f:
            self._vocab = json.load(f)
        with open(os.path.join(path, "merges.txt"), encoding="utf-8") as f:
            lines = [l for l in f.read().split("\n") if l and not l.startswith("#version")]
        self._ranks = {tuple(l.split()): i for i, l in enumerate(lines)}
        self._split = regex.compile(self._PATTERN)
        self._bytes = _bytes_to_unicode()
        self._cache = {}
        self.bos, self.eos = self._vocab["<|startoftext|>"], self._vocab["<|endoftext|>"]

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        return cls(path)

    def get_vocab(self):
        return dict(self._vocab)

    def _bpe(self, piece):
        if piece in self._cache:
            return self._cache[piece]
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(self._ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            pairs = [p for p in pairs if p[0] is not None]
            if not pairs:
                break
            rank = min(p[0] for p in pairs)
            first, second = [(a, b) for a, b in zip(word, word[1:]) if self._ranks.get((a, b)) == rank][0]
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[piece] = word
        return word

    def __call__(self, text, *args, **kwargs):
        import unicodedata

        import regex

        ids = [self.bos]
        for stretch in regex.split(self._SPECIAL, text):
            if stretch in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self._vocab[stretch])
                continue
            norm = regex.sub(r"\s+", " ", unicodedata.normalize("NFC", stretch))
            norm = "".join(c.lower() for c in norm)
            for piece in self._split.findall(norm):
                chars = "".join(self._bytes[b] for b in piece.encode("utf-8"))
                ids.extend(self._vocab.get(t, self.eos) for t in self._bpe(chars))
        ids.append(self.eos)
        return {"input_ids": ids}


def _install_transformers_stub():
    """ComfyUI's text-encoder modules import transformers' tokenizers at import time; Debian has no package.
    Model classes work without it; a tokenizer made from the stub raises, naming what is missing."""
    try:
        import transformers  # noqa: F401
        return
    except ImportError:
        pass

    class _Missing:
        def __init__(self, *a, **k):
            raise ImportError("transformers is not installed on this machine (tools/parity/cpu/cpu_comfy.py)")

        @classmethod
        def from_pretrained(cls, *a, **k):
            return cls()

    mod = types.ModuleType("transformers")
    mod.__getattr__ = lambda name: ClipBpeTokenizer if name in ("CLIPTokenizer", "CLIPTokenizerFast") else _Missing
    sys.modules["transformers"] = mod


def device_scope(device):
    """`with torch.device(d):` for torch < 2.0, where a device is no context manager: the CPU is the default
    device there already, so the scope is empty; any other device is refused (run_cpu.py rewrites the
    statement to this)."""
    import contextlib

    if torch.device(device).type != "cpu":
        raise NotImplementedError(f"torch {torch.__version__} has no default-device scope for {device}")
    return contextlib.nullcontext()


def setup(peer):
    """Puts PEER/ComfyUI and PEER/pylib first on sys.path and installs the stand-ins above."""
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = _sdpa
    _install_safetensors()
    _install_transformers_stub()
    if not torch.cuda.is_available():  # reference scripts print the card they ran on
        torch.cuda.get_device_name = lambda *a, **k: f"CPU (torch {torch.__version__}, fp32)"
    comfy_dir = os.path.abspath(os.path.join(peer, "ComfyUI"))
    pylib = os.path.abspath(os.path.join(peer, "pylib"))
    sys.path[:0] = [comfy_dir, pylib]
    from comfy.cli_args import args
    args.cpu = True
    torch.set_grad_enabled(False)
    return comfy_dir
