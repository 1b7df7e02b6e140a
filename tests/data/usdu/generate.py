#!/usr/bin/python3
"""Expected pixels for src/nodes/usdu_test.cpp and pil_ops_test.cpp, made with the real Ultimate SD Upscale code.

Needs PIL (Debian python3-pil; the committed files were made with Pillow 9.4) and a checkout of
ssitu/ComfyUI_UltimateSDUpscale with its submodule's scripts/ultimate-upscale.py at
repositories/ultimate_sd_upscale/ (the peer folder's copy: .peer/custom_nodes/ComfyUI_UltimateSDUpscale).
Only for regenerating: the tests do not run this, and no USDU code is committed here.

    /usr/bin/python3 tests/data/usdu/generate.py PATH/TO/ComfyUI_UltimateSDUpscale

torch, numpy, ComfyUI and gradio are replaced by stubs: the node's own tile loop, masks, crops, resizes and
composites run unchanged, and the sampler is a fake that netdist's test reproduces (fake_redraw below):
VAE encode and decode are the identity on PIL tiles, and "sampling" rewrites each tile's pixels from the tile's
pixels, its position and the call's ordinal, so a wrong crop, size, order or composite changes the output.

Writes NAME.golden files: a line "frames width height channels", then the bytes in hex, one row per line;
and usdu_cases.txt: one line per USDU case, "name settings... -> calls sha256" (see usdu_test.cpp).
"""
import hashlib
import os
import sys
import types

from PIL import Image, ImageFilter, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))


def pattern(w, h, mode, seed=0):
    im = Image.new(mode, (w, h))
    bands = len(im.getbands())
    px = []
    for y in range(h):
        for x in range(w):
            v = tuple((x * 37 + y * 71 + b * 101 + seed * 53 + (x * y * 13 if b % 2 else 0)) % 256 for b in range(bands))
            px.append(v[0] if bands == 1 else v)
    im.putdata(px)
    return im


def write_golden(name, im):
    bands = len(im.getbands())
    data = im.tobytes()
    row = im.width * bands
    with open(os.path.join(HERE, name + ".golden"), "w") as f:
        f.write(f"1 {im.width} {im.height} {bands}\n")
        for y in range(im.height):
            f.write(data[y * row:(y + 1) * row].hex() + "\n")


def pil_goldens():
    mask = Image.new("L", (37, 29), 0)
    mask.paste(255, (5, 4, 21, 18))
    mask.paste(pattern(6, 5, "L", 1), (25, 20))
    for r in (1, 2, 4, 8, 13):
        write_golden(f"blur_{r}", mask.filter(ImageFilter.GaussianBlur(r)))
    narrow = pattern(5, 40, "L", 2)
    write_golden("blur_narrow_8", narrow.filter(ImageFilter.GaussianBlur(8)))
    g = Image.linear_gradient("L")
    write_golden("bicubic_gradient", g.resize((64, 16), resample=Image.BICUBIC))
    write_golden("bicubic_gradient_180", g.rotate(180).resize((50, 21), resample=Image.BICUBIC))
    write_golden("bicubic_radial_inv", ImageOps.invert(Image.radial_gradient("L").resize((48, 40), resample=Image.BICUBIC)))
    rgb = pattern(40, 30, "RGB", 3)
    write_golden("lanczos_down", rgb.resize((33, 21), resample=Image.LANCZOS))
    write_golden("lanczos_up", rgb.resize((80, 61), resample=Image.LANCZOS))
    # USDU's composite: paste the tile into a transparent canvas, alpha = mask, alpha_composite onto the image.
    image = pattern(20, 16, "RGB", 4)
    tile = pattern(10, 8, "RGB", 5)
    full_mask = Image.new("L", image.size, 0)
    full_mask.paste(pattern(10, 8, "L", 6), (4, 3))
    only = Image.new("RGBA", image.size)
    only.paste(tile, (4, 3))
    temp = only.copy()
    temp.putalpha(full_mask)
    only.paste(temp, only)
    result = image.convert("RGBA")
    result.alpha_composite(only)
    write_golden("composite", result.convert("RGB"))


def stub(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    sys.modules[name] = m
    return m


class Identity:
    def encode(self, vae, x):
        return (x,)

    def decode(self, vae, x, *args):
        return (x,)


def fake_redraw(tile, ordinal):
    """What netdist's test does too: v' = (255 - v + 31·ordinal + 3x + 5y + 7c) mod 256."""
    w, h = tile.size
    src = tile.tobytes()
    out = bytearray(len(src))
    for y in range(h):
        for x in range(w):
            for c in range(3):
                i = (y * w + x) * 3 + c
                out[i] = (255 - src[i] + 31 * ordinal + 3 * x + 5 * y + 7 * c) % 256
    return Image.frombytes("RGB", (w, h), bytes(out))


def load_usdu(repo):
    stub("torch", cat=lambda items, dim=0: [t for group in items for t in group], Tensor=object)
    stub("torch.nn")
    stub("torch.nn.functional")
    stub("numpy")
    stub("torchvision")
    stub("torchvision.transforms", GaussianBlur=None)
    stub("gradio")
    stub("tqdm", tqdm=None)
    stub("nodes", common_ksampler=None, VAEEncode=Identity, VAEDecode=Identity, VAEDecodeTiled=Identity)
    stub("comfy")
    stub("comfy.utils", PROGRESS_BAR_ENABLED=False)
    stub("comfy_extras")
    stub("comfy_extras.nodes_custom_sampler", SamplerCustom=object)
    stub("comfy_extras.nodes_upscale_model", ImageUpscaleWithModel=object)
    sys.path.insert(0, repo)
    import usdu_patch  # noqa: F401  (patches the A1111 script as the node does)
    from modules import processing, shared
    from modules.upscaler import UpscalerData
    from repositories import ultimate_upscale
    return processing, shared, UpscalerData, ultimate_upscale


def usdu_goldens(repo):
    processing, shared, UpscalerData, usdu = load_usdu(repo)
    calls = []

    def fake_sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise, *rest):
        out = []
        for tile in latent:
            calls.append(f"{tile.width}x{tile.height}@{denoise}")
            out.append(fake_redraw(tile, len(calls) - 1))
        return out

    processing.sample = fake_sample
    processing.pil_to_tensor = lambda im: [im]
    processing.tensor_to_pil = lambda t, i: t[i]
    processing.crop_model_cond = lambda model, *a: __import__("contextlib").nullcontext(model)
    redraws = {"Linear": usdu.USDUMode.LINEAR, "Chess": usdu.USDUMode.CHESS, "None": usdu.USDUMode.NONE}
    fixes = {"None": usdu.USDUSFMode.NONE, "BandPass": usdu.USDUSFMode.BAND_PASS,
             "HalfTile": usdu.USDUSFMode.HALF_TILE, "HalfTileIntersections": usdu.USDUSFMode.HALF_TILE_PLUS_INTERSECTIONS}
    cases = []
    size_cases = [(96, 80, 32, 32, 8, 4, 16, 8, 3), (90, 70, 40, 24, 8, 2, 12, 8, 5)]
    for (w, h, tw, th, pad, blur, sfw, sfpad, sfblur) in size_cases:
        for redraw in redraws:
            for fix in fixes:
                for uniform in (True, False):
                    calls.clear()
                    image = pattern(w, h, "RGB", 7)
                    shared.sd_upscalers[0] = UpscalerData()
                    shared.actual_upscaler = None
                    shared.batch = [image]
                    p = processing.StableDiffusionProcessing(
                        image, None, [], [], None, 5, 1, 1.0, "euler", "normal", 0.25, 1.0, uniform, False,
                        tw, th, redraws[redraw], fixes[fix])
                    usdu.Script().run(p=p, _=None, tile_width=tw, tile_height=th, mask_blur=blur, padding=pad,
                                      seams_fix_width=sfw, seams_fix_denoise=0.5, seams_fix_padding=sfpad,
                                      upscaler_index=0, save_upscaled_image=False, redraw_mode=redraws[redraw],
                                      save_seams_fix_image=False, seams_fix_mask_blur=sfblur,
                                      seams_fix_type=fixes[fix], target_size_type=2, custom_width=None,
                                      custom_height=None, custom_scale=1.0)
                    out = shared.batch[0]
                    name = f"{w}x{h}_{redraw}_{fix}_{'uniform' if uniform else 'free'}"
                    digest = hashlib.sha256(out.tobytes()).hexdigest()
                    cases.append(f"{name} {w} {h} {tw} {th} {pad} {blur} {redraw} {fix} {sfw} {sfpad} {sfblur} "
                                 f"{int(uniform)} -> {out.width}x{out.height} {','.join(calls) or '-'} {digest}")
    with open(os.path.join(HERE, "usdu_cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")


if __name__ == "__main__":
    pil_goldens()
    if len(sys.argv) > 1:
        usdu_goldens(os.path.abspath(sys.argv[1]))
