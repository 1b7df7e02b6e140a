#!/usr/bin/env python3
"""Reference data for src/nodes/ops_parity_test.cpp (netdist_parity_tests, ParityOps.*): the pinned ComfyUI's
own mask, latent, image and conditioning operation classes (nodes.py, comfy_extras/nodes_mask.py,
nodes_latent.py, nodes_images.py, nodes_post_processing.py) run on fixed small random inputs, CPU torch.

    python3 tools/parity/ops_reference.py --peer .peer --out DIR

Writes into DIR:
  tensors.safetensors   every input and output tensor, by key "<case>/in/<input>" and "<case>/out/<i>..."
  object_info.json      server.py's /object_info entry of every class compared (LoadImageMask's file list emptied)
  cases.json            {"torch": version, "cases": [{"name", "class", "inputs", "outputs"}]}: inputs are
                        literals (INT, FLOAT, BOOLEAN, COMBO) or {"image": key} / {"mask": key} /
                        {"latent": key, "batch_index": [..]?} / {"conditioning": [{"context": key, "pooled": key?}]};
                        outputs, one per RETURN_TYPE, are {"image": key} / {"mask": key} / {"latent": key,
                        "batch_index": [..]?} / {"conditioning": [...]} as ComfyUI returned them.
The netdist side compares its /object_info entries with object_info.json, then runs each case through the same class of its registry and compares every output tensor
(max |diff|, bound 1e-5; masks compared as [N, H, W]) and batch_index lists exactly.
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    comfy_dir = os.path.abspath(os.path.join(a.peer, "ComfyUI"))
    pylib = os.path.abspath(os.path.join(a.peer, "pylib"))
    sys.path[:0] = [comfy_dir, pylib]
    try:
        import peer_compat
        peer_compat.apply(comfy_dir=comfy_dir)
    except ImportError:
        pass
    sys.argv = ["main.py", "--cpu", "--disable-all-custom-nodes"]
    import comfy.options
    comfy.options.enable_args_parsing()
    import torch
    from safetensors.torch import save_file
    import nodes
    import comfy_extras.nodes_mask as nodes_mask
    import comfy_extras.nodes_latent as nodes_latent
    import comfy_extras.nodes_images as nodes_images
    import comfy_extras.nodes_post_processing as nodes_post

    classes, modules = dict(nodes.NODE_CLASS_MAPPINGS), {k: "nodes" for k in nodes.NODE_CLASS_MAPPINGS}
    display = dict(nodes.NODE_DISPLAY_NAME_MAPPINGS)
    for m in (nodes_mask, nodes_latent, nodes_images, nodes_post):
        classes.update(m.NODE_CLASS_MAPPINGS)
        modules.update({k: m.__name__ for k in m.NODE_CLASS_MAPPINGS})
        display.update(getattr(m, "NODE_DISPLAY_NAME_MAPPINGS", {}))

    def node_info(name):  # server.py's node_info, with init_extra_nodes' RELATIVE_PYTHON_MODULE
        c = classes[name]
        info = {"input": c.INPUT_TYPES(), "input_order": {k: list(v.keys()) for k, v in c.INPUT_TYPES().items()},
                "output": c.RETURN_TYPES,
                "output_is_list": getattr(c, "OUTPUT_IS_LIST", [False] * len(c.RETURN_TYPES)),
                "output_name": getattr(c, "RETURN_NAMES", c.RETURN_TYPES), "name": name,
                "display_name": display.get(name, name), "description": getattr(c, "DESCRIPTION", ""),
                "python_module": modules[name], "category": getattr(c, "CATEGORY", "sd"),
                "output_node": getattr(c, "OUTPUT_NODE", False) is True}
        if hasattr(c, "OUTPUT_TOOLTIPS"):
            info["output_tooltips"] = c.OUTPUT_TOOLTIPS
        if name == "LoadImageMask":  # the input folder's listing differs between the two sides
            info["input"]["required"]["image"] = ([], info["input"]["required"]["image"][1])
        return info

    gen = torch.Generator().manual_seed(20)
    rand = lambda *shape: torch.rand(list(shape), generator=gen)  # noqa: E731
    randn = lambda *shape: torch.randn(list(shape), generator=gen)  # noqa: E731
    tensors, cases = {}, []

    def put(key, t):
        tensors[key] = t.detach().to(torch.float32).contiguous().clone()
        return key

    def encode_in(case, name, v):
        kind, value = v
        key = f"{case}/in/{name}"
        if kind == "image":
            return {"image": put(key, value)}, value
        if kind == "mask":
            return {"mask": put(key, value)}, value
        if kind == "latent":
            out = {"latent": put(key, value["samples"])}
            if "batch_index" in value:
                out["batch_index"] = list(value["batch_index"])
            return out, value
        if kind == "conditioning":
            entries = []
            for i, (ctx, extra) in enumerate(value):
                e = {"context": put(f"{key}/{i}/context", ctx)}
                if extra.get("pooled_output") is not None:
                    e["pooled"] = put(f"{key}/{i}/pooled", extra["pooled_output"])
                entries.append(e)
            return {"conditioning": entries}, value
        raise ValueError(kind)

    def encode_out(case, i, rtype, v):
        key = f"{case}/out/{i}"
        if rtype == "IMAGE":
            return {"image": put(key, v)}
        if rtype == "MASK":
            return {"mask": put(key, v.reshape((-1, v.shape[-2], v.shape[-1])))}
        if rtype == "LATENT":
            out = {"latent": put(key, v["samples"])}
            if "batch_index" in v:
                out["batch_index"] = [int(b) for b in v["batch_index"]]
            return out
        if rtype == "CONDITIONING":
            entries = []
            for j, (ctx, extra) in enumerate(v):
                e = {"context": put(f"{key}/{j}/context", ctx)}
                if extra.get("pooled_output") is not None:
                    e["pooled"] = put(f"{key}/{j}/pooled", extra["pooled_output"])
                entries.append(e)
            return {"conditioning": entries}
        raise ValueError(rtype)

    def case(name, cls, **inputs):
        node = classes[cls]
        enc, kwargs = {}, {}
        for k, v in inputs.items():
            if isinstance(v, tuple):
                enc[k], kwargs[k] = encode_in(name, k, v)
            else:
                enc[k], kwargs[k] = v, v
        with torch.inference_mode():  # as ComfyUI's executor runs nodes
            result = getattr(node(), node.FUNCTION)(**kwargs)
        outs = [encode_out(name, i, t, r) for i, (t, r) in enumerate(zip(node.RETURN_TYPES, result))]
        cases.append({"name": name, "class": cls, "inputs": enc, "outputs": outs})

    img = lambda *s: ("image", rand(*s))  # noqa: E731
    msk = lambda *s: ("mask", rand(*s))  # noqa: E731
    lat = lambda *s, **kw: ("latent", dict(samples=randn(*s), **kw))  # noqa: E731
    cond = lambda entries: ("conditioning", entries)  # noqa: E731

    # Masks (comfy_extras/nodes_mask.py).
    case("mask_to_image", "MaskToImage", mask=msk(2, 5, 7))
    for ch in ("red", "alpha"):
        case(f"image_to_mask_{ch}", "ImageToMask", image=img(2, 5, 7, 4), channel=ch)
    case("solid_mask", "SolidMask", value=0.37, width=7, height=5)
    case("invert_mask", "InvertMask", mask=msk(2, 5, 7))
    binary = ("mask", (rand(2, 9, 11) > 0.8).float() * rand(2, 9, 11))
    case("grow_mask_2_tapered", "GrowMask", mask=binary, expand=2, tapered_corners=True)
    case("grow_mask_3_square", "GrowMask", mask=binary, expand=3, tapered_corners=False)
    case("grow_mask_-1_tapered", "GrowMask", mask=msk(2, 9, 11), expand=-1, tapered_corners=True)
    case("grow_mask_-2_square", "GrowMask", mask=msk(1, 9, 11), expand=-2, tapered_corners=False)
    case("feather_mask", "FeatherMask", mask=msk(2, 9, 11), left=3, top=2, right=4, bottom=20)
    for op in ("multiply", "add", "subtract", "and", "or", "xor"):
        case(f"mask_composite_{op}", "MaskComposite", destination=msk(2, 9, 11), source=msk(1, 5, 6), x=7, y=6,
             operation=op)
    case("mask_composite_batch", "MaskComposite", destination=msk(2, 9, 11), source=msk(2, 4, 4), x=1, y=2,
         operation="multiply")
    case("latent_composite_masked", "LatentCompositeMasked", destination=lat(2, 4, 9, 11), source=lat(1, 4, 5, 6),
         x=40, y=16, resize_source=False, mask=msk(1, 3, 4))
    case("latent_composite_masked_resize", "LatentCompositeMasked", destination=lat(1, 4, 9, 11),
         source=lat(1, 4, 5, 6), x=8, y=0, resize_source=True)
    case("image_composite_masked", "ImageCompositeMasked", destination=img(2, 20, 24, 3), source=img(2, 9, 10, 3),
         x=17, y=5, resize_source=False, mask=msk(1, 6, 5))
    case("image_composite_masked_resize", "ImageCompositeMasked", destination=img(1, 20, 24, 3),
         source=img(1, 9, 10, 3), x=3, y=2, resize_source=True)

    # Latents (nodes.py, comfy_extras/nodes_latent.py).
    for feather in (0, 16):
        case(f"latent_composite_f{feather}", "LatentComposite", samples_to=lat(2, 4, 10, 12),
             samples_from=lat(1, 4, 6, 7), x=24, y=8, feather=feather)
    case("latent_composite_edge", "LatentComposite", samples_to=lat(1, 4, 10, 12), samples_from=lat(1, 4, 6, 7),
         x=0, y=48, feather=24)
    case("latent_blend", "LatentBlend", samples1=lat(2, 4, 6, 8), samples2=lat(2, 4, 6, 8), blend_factor=0.3)
    case("latent_blend_resize", "LatentBlend", samples1=lat(1, 4, 6, 8), samples2=lat(1, 4, 9, 9), blend_factor=0.7)
    case("latent_crop", "LatentCrop", samples=lat(2, 4, 12, 14), width=64, height=80, x=24, y=200)
    for m in ("x-axis: vertically", "y-axis: horizontally"):
        case(f"latent_flip_{m[0]}", "LatentFlip", samples=lat(2, 4, 5, 6), flip_method=m)
    for r in ("90 degrees", "180 degrees", "270 degrees"):
        case(f"latent_rotate_{r[:3].strip()}", "LatentRotate", samples=lat(1, 4, 5, 6), rotation=r)
    case("latent_batch", "LatentBatch", samples1=lat(2, 4, 6, 8, batch_index=[3, 4]), samples2=lat(1, 4, 9, 9))

    # Images (nodes.py, comfy_extras/nodes_images.py, nodes_post_processing.py).
    case("image_crop", "ImageCrop", image=img(2, 10, 12, 3), width=5, height=20, x=4, y=3)
    case("image_invert", "ImageInvert", image=img(2, 5, 6, 3))
    case("empty_image", "EmptyImage", width=7, height=5, batch_size=2, color=0x12ABEF)
    case("pad_for_outpaint", "ImagePadForOutpaint", image=img(1, 20, 24, 3), left=8, top=0, right=16, bottom=8,
         feathering=5)
    for mode in ("normal", "multiply", "screen", "overlay", "soft_light", "difference"):
        case(f"image_blend_{mode}", "ImageBlend", image1=img(2, 8, 9, 3), image2=img(2, 8, 9, 3), blend_factor=0.6,
             blend_mode=mode)
    case("image_blend_resize", "ImageBlend", image1=img(1, 8, 9, 3), image2=img(1, 13, 11, 3), blend_factor=0.4,
         blend_mode="overlay")
    case("image_blur_2", "ImageBlur", image=img(2, 12, 13, 3), blur_radius=2, sigma=1.3)
    case("image_blur_5", "ImageBlur", image=img(1, 12, 13, 3), blur_radius=5, sigma=3.0)
    case("image_sharpen", "ImageSharpen", image=img(2, 12, 13, 3), sharpen_radius=2, sigma=0.8, alpha=0.6)

    # Conditioning (nodes.py).
    to = [[randn(1, 77, 8), {"pooled_output": randn(1, 5)}], [randn(1, 154, 8), {}]]
    frm = [[randn(1, 77, 8), {"pooled_output": randn(1, 5)}]]
    case("conditioning_concat", "ConditioningConcat", conditioning_to=cond(to), conditioning_from=cond(frm))
    case("conditioning_average", "ConditioningAverage", conditioning_to=cond(to), conditioning_from=cond(frm),
         conditioning_to_strength=0.35)
    case("conditioning_zero_out", "ConditioningZeroOut", conditioning=cond(to))

    info_classes = sorted({c["class"] for c in cases} | {"LoadImageMask", "ConditioningSetAreaStrength"})
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "object_info.json"), "w") as f:
        json.dump({name: node_info(name) for name in info_classes}, f, indent=1)
    save_file(tensors, os.path.join(a.out, "tensors.safetensors"))
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
    print(json.dumps({"torch": torch.__version__, "cases": len(cases), "tensors": len(tensors)}))


if __name__ == "__main__":
    main()
