#!/usr/bin/env python3
"""bench/vram_bench.py — peak GPU memory and speed of netdist next to ComfyUI, in one command (GPU machine).

  python3 bench/vram_bench.py --build build/gpu --work /tmp/vram-bench [--runs 3] [--config NAME=ARGS ...]

Each configuration is one server process (headless ComfyUI from `.peer/`, or `netdist serve`) that runs a
sequence of API-format workflows one after the other, as a user switching between them would:
SD1.5 512² batch 1, SD1.5 512² batch 10, SDXL 1024² batch 1 (.peer/harness/workflows, euler/normal, 20
steps). The card's memory.used (nvidia-smi, sampled every 50 ms) is recorded while each server lives; the
peak above the idle level before the server started is the figure (it is what a user's other programs
lose: CUDA context, caching allocator, weights, activations). Per workflow it prints the median wall
seconds (POST → done, as a client sees it) and sampler it/s, from .peer/harness/peerlib.py's client.
Ratios are netdist's against the first ComfyUI configuration of the same command.

Configurations: `comfy` (ComfyUI defaults), `netdist` (defaults); more with --config NAME=ARGS, where a
NAME starting with "comfy" is ComfyUI with ARGS added and any other is `netdist serve` with ARGS added
(ARGS may start with ENV=VALUE words), e.g. --config "nd-graphs-off=--no-cuda-graphs"
--config "comfy-12g=--reserve-vram 68" --config "nd-12g=--vram-limit 12". --cases limits the workflows
per configuration (NAME:case,case; a case may repeat, e.g. to cycle checkpoints). Needs `.peer/` (../shared/peer/prepare.sh) and a GPU build of netdist.
"""
import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, ".peer")
sys.path.insert(0, os.path.join(PEER, "harness"))
import peerlib  # noqa: E402

CASES = ["sd15_txt2img_512_b1", "sd15_txt2img_512_b10", "sdxl_txt2img_1024_b1"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def gpu_used_mib(index):
    out = subprocess.run(["nvidia-smi", "-i", str(index), "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[0])


class Sampler(threading.Thread):
    """Polls the card's memory.used; peak() is the largest value since the last mark()."""

    def __init__(self, index):
        super().__init__(daemon=True)
        self.index, self.stop_flag, self.lock = index, False, threading.Lock()
        self.overall = self.window = 0

    def run(self):
        while not self.stop_flag:
            v = gpu_used_mib(self.index)
            with self.lock:
                self.overall, self.window = max(self.overall, v), max(self.window, v)
            time.sleep(0.05)

    def mark(self):
        with self.lock:
            w, self.window = self.window, 0
        return w


class NetdistServer(peerlib.ExternalServer):
    def __init__(self, binary, port, workdir, models_dir, args, env):
        super().__init__(f"http://127.0.0.1:{port}")
        self.cmd = [binary, "serve", "--port", str(port), "--models-dir", models_dir, "--output-directory",
                    os.path.join(workdir, "output"), "--device", "cuda",
                    "--clip-vocab", os.path.join(ROOT, "tests/data/clip-vit-l-14-tokenizer")] + args
        self.env, self.workdir, self.proc = env, workdir, None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.log_path = os.path.join(self.workdir, "server.log")
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env)
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout=600):
        # A server that exits at start (a missing shared library, a bad flag) is an error now, not after
        # the whole timeout.
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netdist serve exited with {self.proc.returncode} before it was ready:\n"
                                   + self.log_text()[-2000:])
            try:
                return super().wait_ready(timeout=2)
            except RuntimeError:
                pass
        raise RuntimeError(f"netdist serve did not answer /object_info within {timeout} s")

    def log_text(self):
        return peerlib.ComfyServer.log_text(self)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def split_args(text):
    words = shlex.split(text)
    env = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    return env, words


def run_config(name, args_text, cases, opts, ckpts):
    env, args = split_args(args_text)
    workdir = os.path.join(opts.work, name)
    port = free_port()
    if name.startswith("comfy"):
        srv = peerlib.ComfyServer(os.path.join(PEER, "ComfyUI"), port, os.path.join(workdir, "server"), cuda_device=0,
                                  ckpt_dirs=[os.path.join(opts.work, "models", "checkpoints")], extra_args=args,
                                  name=name)
        for k, v in env.items():
            os.environ[k] = v
    else:
        srv = NetdistServer(os.path.join(opts.build, "netdist"), port, workdir, os.path.join(opts.work, "models"), args,
                            env)
    idle = gpu_used_mib(0)
    sampler = Sampler(0)
    sampler.start()
    result = {"config": name, "args": args_text, "idle_mib": idle, "cases": {}}
    try:
        srv.start()
        srv.wait_ready()
        sampler.mark()
        for step, case in enumerate(cases):
            key = case if case not in result["cases"] else f"{case}#{step + 1}"
            prompt = peerlib.load_workflow(os.path.join(PEER, "harness", "workflows", case + ".json"))
            peerlib.set_ckpt(prompt, os.path.basename(ckpts[case.split("_")[0]]))
            warm, measured = peerlib.bench(srv.url, prompt, opts.runs, 1, os.path.join(workdir, case), case, "none",
                                           900)
            s = peerlib.summarize(measured, prompt)
            result["cases"][key] = {"wall_s": s["wall_s"]["median"], "images": s["images_per_run"],
                                     "it_s": ((s.get("sampler_it_s") or {}).get("median")),
                                     "peak_mib": sampler.mark() - idle}
    except Exception as e:  # noqa: BLE001
        result["error"] = f"{type(e).__name__}: {e}"
        print(f"vram_bench: {name}: {result['error']}\n{srv.log_tail(30) if hasattr(srv, 'log_tail') else ''}",
              flush=True)
    finally:
        srv.stop()
        for k in env:
            if name.startswith("comfy"):
                os.environ.pop(k, None)
        time.sleep(1.0)
        sampler.stop_flag = True
        sampler.join()
    result["peak_mib"] = sampler.overall - idle
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/gpu")
    ap.add_argument("--work", default="/tmp/vram-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--config", action="append", default=[], help="NAME=ARGS (see the module docstring)")
    ap.add_argument("--cases", action="append", default=[], help="NAME:case,case")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--order", default=None, help="NAME,NAME,...: run only these configurations, in this order")
    opts = ap.parse_args()
    configs = [("comfy", ""), ("netdist", "")] + [tuple(c.split("=", 1)) if "=" in c else (c, "") for c in opts.config]
    if opts.order:
        named = dict(configs)
        configs = [(n, named[n]) for n in opts.order.split(",")]
    only = {c.split(":", 1)[0]: c.split(":", 1)[1].split(",") for c in opts.cases}
    ckdir = os.path.join(opts.work, "models", "checkpoints")
    os.makedirs(ckdir, exist_ok=True)
    ckpts = {}
    for family in ("sd15", "sdxl"):
        path = os.path.join(ckdir, f"peer_{family}.safetensors")
        if not os.path.exists(path):
            subprocess.run([sys.executable, os.path.join(PEER, "harness", "make_checkpoint.py"), "--comfy",
                            os.path.join(PEER, "ComfyUI"), "--family", family, "--out", path, "--seed", "0", "--dtype",
                            "fp16"], check=True, stdout=subprocess.DEVNULL)
        ckpts[family] = path
    card = subprocess.run(["nvidia-smi", "-i", "0", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                          capture_output=True, text=True).stdout.strip()
    results = []
    for name, args_text in configs:
        results.append(run_config(name, args_text, only.get(name, CASES), opts, ckpts))
        print(json.dumps(results[-1]), flush=True)
    base = next((r for r in results if r["config"].startswith("comfy") and "error" not in r), None)
    print(f"\ncard: {card}; {opts.runs} measured runs per case after 1 warm-up; peak = max memory.used above idle")
    print(f"{'config':<16} {'case':<24} {'wall s':>8} {'it/s':>7} {'peak MiB in case':>18} {'x comfy':>8}")
    for r in results:
        for case, c in r["cases"].items():
            ref = base["cases"].get(case.split("#")[0]) if base else None
            ratio = f"{c['peak_mib'] / ref['peak_mib']:.2f}" if ref and ref["peak_mib"] > 0 else "-"
            print(f"{r['config']:<16} {case:<24} {c['wall_s']:>8.3f} {(c['it_s'] or 0):>7.2f} {c['peak_mib']:>18} {ratio:>8}")
        ratio = f"{r['peak_mib'] / base['peak_mib']:.2f}" if base and base["peak_mib"] > 0 else "-"
        print(f"{r['config']:<16} {'(whole sequence)':<24} {'':>8} {'':>7} {r['peak_mib']:>18} {ratio:>8}"
              + (f"  ERROR {r['error']}" if "error" in r else ""))
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"card": card, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
