#!/usr/bin/env python3
"""Runs a tools/parity reference script on this machine's CPU torch, with cpu_comfy's stand-ins installed first:

    /usr/bin/python3 tools/parity/cpu/run_cpu.py [--peer PEER] SCRIPT [ARGS...]

(PEER defaults to .peer.) The script runs as __main__ with the pinned ComfyUI importable (cpu_comfy.setup).
"""
import os
import runpy
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
    runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
