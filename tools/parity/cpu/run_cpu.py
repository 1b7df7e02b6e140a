#!/usr/bin/env python3
"""Runs a tools/parity reference script on this machine's CPU torch, with cpu_comfy's stand-ins installed first:

    /usr/bin/python3 tools/parity/cpu/run_cpu.py [--peer PEER] SCRIPT [ARGS...]

(PEER defaults to .peer.) The script runs as __main__ with the pinned ComfyUI importable (cpu_comfy.setup);
its `with torch.device(X):` statements (torch >= 2.0 only) become cpu_comfy.device_scope(X).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_comfy  # noqa: E402


def main():
    args = sys.argv[1:]
    peer = ".peer"
    if len(args) >= 2 and args[0] == "--peer":
        peer, args = args[1], args[2:]
    if not args:
        sys.exit(__doc__)
    cpu_comfy.setup(peer)
    sys.argv = args
    path = os.path.abspath(args[0])
    sys.path.insert(0, os.path.dirname(path))
    with open(path, encoding="utf-8") as f:
        source = f.read().replace("with torch.device(", "with __import__('cpu_comfy').device_scope(")
    main_module = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    exec(compile(source, path, "exec"), main_module)


if __name__ == "__main__":
    main()
