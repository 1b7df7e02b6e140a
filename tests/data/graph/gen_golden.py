#!/usr/bin/env python3
"""Golden validation replies and execution event streams from ComfyUI's own execution.py.

Usage: gen_golden.py COMFYUI_DIR  (writes validation_golden.json and execution_golden.json next to this file)

torch, nodes and comfy.model_management are replaced by stubs; the node classes mirror
src/graph/fake_nodes.h. Tracebacks are replaced by [] (netdist sends none). Python set orders (executed, current_outputs, dependent_outputs, good outputs)
are sorted so the files do not depend on PYTHONHASHSEED; the C++ tests sort the same lists.
"""
import contextlib
import copy
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, sys.argv[1])

torch = types.ModuleType("torch")
torch.inference_mode = contextlib.nullcontext
sys.modules["torch"] = torch

comfy = types.ModuleType("comfy")
mm = types.ModuleType("comfy.model_management")
mm.interrupt = False


class InterruptProcessingException(Exception):
    pass


def throw_if_interrupted():
    if mm.interrupt:
        mm.interrupt = False
        raise InterruptProcessingException()


mm.InterruptProcessingException = InterruptProcessingException
mm.OOM_EXCEPTION = MemoryError
mm.throw_exception_if_processing_interrupted = throw_if_interrupted
mm.cleanup_models_gc = lambda: None
mm.unload_all_models = lambda: None
mm.DISABLE_SMART_MEMORY = False
comfy.model_management = mm
sys.modules["comfy"] = comfy
sys.modules["comfy.model_management"] = mm

nodes = types.ModuleType("nodes")
sys.modules["nodes"] = nodes


def interrupt_processing(value=True):
    mm.interrupt = value


nodes.interrupt_processing = interrupt_processing
nodes.before_node_execution = throw_if_interrupted


class AnyType(str):
    def __ne__(self, other):
        return False


class Thing:
    def __init__(self, type_, label):
        self.type_, self.label = type_, label

    def __str__(self):
        return f"<{self.type_} {self.label}>"


SERVER = None
INTERRUPT_AT_STEP = [False]


class CheckpointLoaderSimple:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"ckpt_name": (["v1-5-pruned-emaonly.safetensors", "sdxl.safetensors"],
                                           {"tooltip": "The name of the checkpoint (model) to load."})}}
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "run"

    def run(self, ckpt_name):
        return (Thing("MODEL", ckpt_name), Thing("CLIP", ckpt_name), Thing("VAE", ckpt_name))


class CLIPTextEncode:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {
            "text": ("STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."}),
            "clip": ("CLIP", {"tooltip": "The CLIP model used for encoding the text."})}}
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "run"

    def run(self, clip, text):
        return (Thing("CONDITIONING", text),)


class EmptyLatentImage:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {
            "width": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8, "tooltip": "The width of the latent images in pixels."}),
            "height": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8, "tooltip": "The height of the latent images in pixels."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096, "tooltip": "The number of latent images in the batch."})}}
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"

    def run(self, width, height, batch_size=1):
        return (Thing("LATENT", f"{width}x{height}"),)


SAMPLERS = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
            "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
            "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
            "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep",
            "res_multistep_cfg_pp", "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta", "linear_quadratic",
              "kl_optimal"]


class KSampler:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The model used for denoising the input latent."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "tooltip": "The random seed used for creating the noise."}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "The number of steps used in the denoising process."}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": "The Classifier-Free Guidance scale balances creativity and adherence to the prompt. Higher values result in images more closely matching the prompt however too high values will negatively impact quality."}),
            "sampler_name": (SAMPLERS, {"tooltip": "The algorithm used when sampling, this can affect the quality, speed, and style of the generated output."}),
            "scheduler": (SCHEDULERS, {"tooltip": "The scheduler controls how noise is gradually removed to form the image."}),
            "positive": ("CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to include in the image."}),
            "negative": ("CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to exclude from the image."}),
            "latent_image": ("LATENT", {"tooltip": "The latent image to denoise."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "The amount of denoising applied, lower values will maintain the structure of the initial image allowing for image to image sampling."})}}
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"

    def run(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0):
        for i in range(steps):
            if INTERRUPT_AT_STEP[0] and i == 1:
                mm.interrupt = True
            throw_if_interrupted()
            SERVER.send_sync("progress", {"value": i + 1, "max": steps, "prompt_id": SERVER.last_prompt_id,
                                          "node": SERVER.last_node_id}, SERVER.client_id)
        return (Thing("LATENT", f"seed{seed}"),)


class VAEDecode:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"samples": ("LATENT", {"tooltip": "The latent to be decoded."}),
                             "vae": ("VAE", {"tooltip": "The VAE model used for decoding the latent."})}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    def run(self, vae, samples):
        return (Thing("IMAGE", samples.label),)


class SaveImage:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The images to save."}),
            "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes."})},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        return {"ui": {"images": [{"filename": filename_prefix + "_00001_.png", "subfolder": "", "type": "output"}]}}


class TestWidgets:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"flag": ("BOOLEAN", {"default": False}), "text": ("STRING", {"default": ""})},
                "optional": {"count": ("INT", {"default": 0, "min": 0, "max": 10}),
                             "ratio": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "image": ("IMAGE,MASK",)}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, flag, text, count=0, ratio=0.5, image=None):
        return {"ui": {"text": [text]}, "result": (count,)}


class TestFail:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"images": ("IMAGE",), "reason": ("STRING", {"default": "boom"})}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    def run(self, images, reason):
        raise ValueError(reason)


class TestAny:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"value": (AnyType("*"),)}}
    RETURN_TYPES = (AnyType("*"),)
    FUNCTION = "run"

    def run(self, value):
        return (value,)


nodes.NODE_CLASS_MAPPINGS = {c.__name__: c for c in [CheckpointLoaderSimple, CLIPTextEncode, EmptyLatentImage,
                                                      KSampler, VAEDecode, SaveImage, TestWidgets, TestFail, TestAny]}

import execution  # noqa: E402


def base():
    return {
        "3": {"class_type": "KSampler", "inputs": {"seed": 8566257, "steps": 3, "cfg": 8, "sampler_name": "euler",
                                                    "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                                    "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["5", 0]}, "_meta": {"title": "KSampler"}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "masterpiece best quality girl", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad hands", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


def mutate(fn):
    p = base()
    fn(p)
    return p


def set_input(node, name, value):
    def f(p):
        p[node]["inputs"][name] = value
    return f


def del_input(node, name):
    def f(p):
        del p[node]["inputs"][name]
    return f


def second_save(p):
    p["10"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "second", "images": ["8", 0]}}


def chain(*fns):
    def f(p):
        for fn in fns:
            fn(p)
    return f


def widgets(inputs):
    return {"1": {"class_type": "TestWidgets", "inputs": inputs}}


VALIDATION_CASES = [
    ("valid_default", base()),
    ("valid_converts_strings", mutate(chain(set_input("3", "steps", "4"), set_input("3", "seed", " 1_000 "),
                                            set_input("3", "cfg", "7.5"), set_input("5", "width", 640.9)))),
    ("missing_class_type", {"1": {"inputs": {}}, "2": {"class_type": "SaveImage", "inputs": {}}}),
    ("unknown_class", mutate(lambda p: p["5"].update(class_type="NoSuchNode"))),
    ("no_outputs", {"4": base()["4"]}),
    ("combo_not_in_list", mutate(set_input("4", "ckpt_name", "x.safetensors"))),
    ("combo_long_list", mutate(set_input("3", "sampler_name", "nope"))),
    ("int_below_min", mutate(set_input("3", "steps", 0))),
    ("int_above_max", mutate(set_input("3", "steps", 20000))),
    ("float_above_max", mutate(set_input("3", "cfg", 100.5))),
    ("float_below_min_string", mutate(set_input("3", "denoise", "-0.5"))),
    ("int_not_a_number", mutate(set_input("3", "steps", "abc"))),
    ("int_from_float_string", mutate(set_input("3", "steps", "20.5"))),
    ("float_from_null", mutate(set_input("3", "cfg", None))),
    ("required_missing", mutate(del_input("3", "model"))),
    ("type_mismatch", mutate(set_input("3", "positive", ["4", 0]))),
    ("type_mismatch_combo", mutate(set_input("3", "sampler_name", ["4", 0]))),
    ("bad_linked_input", mutate(set_input("8", "vae", ["4"]))),
    ("link_missing_node_at_output", mutate(set_input("9", "images", ["99", 0]))),
    ("link_missing_node_inner", mutate(set_input("3", "model", ["99", 0]))),
    ("link_numeric_id", mutate(set_input("8", "vae", [4, 2]))),
    ("link_slot_out_of_range", mutate(set_input("8", "vae", ["4", 5]))),
    ("link_slot_negative", mutate(set_input("8", "vae", ["4", -1]))),
    ("link_slot_float", mutate(set_input("8", "vae", ["4", 2.0]))),
    ("link_to_output_without_outputs", mutate(set_input("8", "vae", ["9", 0]))),
    ("missing_inputs_key", mutate(lambda p: p["8"].pop("inputs"))),
    ("one_output_fails", mutate(chain(second_save, set_input("10", "images", ["5", 0])))),
    ("both_outputs_fail", mutate(chain(second_save, set_input("4", "ckpt_name", "x.safetensors")))),
    ("widgets_convert", widgets({"flag": "false", "text": 12, "count": "3", "ratio": "0.25"})),
    ("widgets_convert_more", widgets({"flag": 0, "text": {"a": [1, 2.5, None, True]}, "count": 1.9, "ratio": 1})),
    ("widgets_bool_from_list_literal", widgets({"flag": {"x": 1}, "text": None})),
    ("widgets_errors", widgets({"text": "x", "count": 11, "ratio": "nanx"})),
    ("widgets_float_exponent", widgets({"flag": True, "text": "", "ratio": "1e5"})),
    ("widgets_optional_link_ok", {**widgets({"flag": True, "text": "", "image": ["8", 0]}), **{
        k: v for k, v in base().items() if k != "9"}}),
    ("widgets_optional_link_mismatch", {**widgets({"flag": True, "text": "", "image": ["5", 0]}),
                                        "5": base()["5"]}),
    ("any_type_links", {**base(), "20": {"class_type": "TestAny", "inputs": {"value": ["4", 0]}},
                        "21": {"class_type": "TestWidgets", "inputs": {"flag": True, "text": "", "image": ["20", 0]}}}),
    ("seed_max", mutate(set_input("3", "seed", 0xffffffffffffffff))),
    ("string_repr_quotes", mutate(set_input("4", "ckpt_name", "it's \"x\"\n"))),
]


def strip_tracebacks(obj):
    if isinstance(obj, dict):
        return {k: ([] if k == "traceback" else strip_tracebacks(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [strip_tracebacks(v) for v in obj]
    return obj


def sort_lists(body):
    for entry in (body.get("node_errors") or {}).values() if isinstance(body.get("node_errors"), dict) else []:
        entry["dependent_outputs"].sort(key=lambda x: (len(x), x))
    return body


def gen_validation():
    out = []
    for name, prompt in VALIDATION_CASES:
        p = copy.deepcopy(prompt)
        valid = execution.validate_prompt(p)
        case = {"name": name, "prompt": prompt}
        if valid[0]:
            case["ok"] = True
            case["outputs"] = sorted(valid[2], key=lambda x: list(p.keys()).index(x))
            case["node_errors"] = strip_tracebacks(sort_lists({"node_errors": valid[3]})["node_errors"])
            case["converted"] = p
        else:
            case["ok"] = False
            case["body"] = strip_tracebacks(sort_lists(json.loads(json.dumps({"error": valid[1], "node_errors": valid[3]}))))
        out.append(case)
    return out


class Server:
    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.events = []

    def send_sync(self, event, data, sid=None):
        data = copy.deepcopy(data)
        data.pop("timestamp", None)
        for key in ("executed", "current_outputs"):
            if key in data:
                data[key] = sorted(data[key], key=lambda x: (len(x), x))
        self.events.append([event, strip_tracebacks(data)])


def run_steps(steps, interrupt_at_step=False):
    global SERVER
    SERVER = Server()
    executor = execution.PromptExecutor(SERVER)
    results = []
    for i, prompt in enumerate(steps):
        p = copy.deepcopy(prompt)
        valid = execution.validate_prompt(p)
        assert valid[0], valid
        outputs = sorted(valid[2], key=lambda x: list(p.keys()).index(x))
        SERVER.events = []
        SERVER.last_prompt_id = f"p{i}"
        INTERRUPT_AT_STEP[0] = interrupt_at_step
        executor.execute(p, f"p{i}", {"client_id": "c"}, outputs)
        INTERRUPT_AT_STEP[0] = False
        results.append({"prompt": prompt, "events": SERVER.events, "outputs": executor.history_result["outputs"],
                        "success": executor.success})
    return results


def two_outputs():
    p = base()
    p["10"] = {"class_type": "TestWidgets", "inputs": {"flag": True, "text": "hi", "image": ["8", 0]}}
    p["11"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "b", "images": ["8", 0]}}
    return p


def with_fail():
    p = base()
    p["12"] = {"class_type": "TestFail", "inputs": {"images": ["8", 0], "reason": "boom"}}
    p["9"]["inputs"]["images"] = ["12", 0]
    return p


def gen_execution():
    seed_changed = mutate(set_input("3", "seed", 1))
    unrelated = mutate(set_input("7", "text", "worse hands"))
    return [
        {"name": "fresh_cached_then_seed", "steps": run_steps([base(), base(), seed_changed, base()])},
        {"name": "negative_prompt_change", "steps": run_steps([base(), unrelated])},
        {"name": "two_outputs", "steps": run_steps([two_outputs(), two_outputs()])},
        {"name": "node_error", "steps": run_steps([with_fail()])},
        {"name": "interrupt", "steps": run_steps([base()], interrupt_at_step=True)},
        {"name": "duplicate_nodes_share_cache",
         "steps": run_steps([mutate(lambda p: p["7"]["inputs"].update(text="masterpiece best quality girl"))])},
    ]


with open(os.path.join(HERE, "validation_golden.json"), "w") as f:
    json.dump(gen_validation(), f, indent=1)
with open(os.path.join(HERE, "execution_golden.json"), "w") as f:
    json.dump(gen_execution(), f, indent=1)
print("ok")
