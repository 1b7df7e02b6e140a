#!/usr/bin/python3
"""Makes the small JPEG/WebP test images of src/io/image_decode_test.cpp and their expected pixels.

Needs PIL (Debian python3-pil, which decodes through the same libjpeg-turbo and libwebp as netdist). Only
for regenerating: the images and the .golden files are committed, and the tests do not run this.
Each NAME.golden holds what ComfyUI's LoadImage sees: for every frame of ImageSequence.Iterator, after
ImageOps.exif_transpose, convert("RGB") and, where the mode has an A band, that band as a 4th channel.
Format: a line "frames width height channels", then the bytes in hex, one image row per line.
"""
import io
import os
import sys

from PIL import Image, ImageOps, ImageSequence

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.join(HERE, "..", "fuzz", "image_decode_fuzz")


def pattern(w, h, mode, seed=0):
    im = Image.new(mode, (w, h))
    bands = len(im.getbands())
    px = []
    for y in range(h):
        for x in range(w):
            v = tuple((x * 37 + y * 71 + b * 101 + seed * 53 + (x * y * 13 if b % 2 else 0)) % 256 for b in range(bands))
            if mode in ("RGBA", "LA"):
                v = v[:-1] + ((x * 255) // max(1, w - 1) if y % 2 == 0 else (y * 40) % 256,)
            px.append(v[0] if bands == 1 else v)
    im.putdata(px)
    return im


def exif_bytes(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def golden(path):
    img = Image.open(path)
    frames = []
    for frame in ImageSequence.Iterator(img):
        i = ImageOps.exif_transpose(frame)
        rgb = i.convert("RGB")
        data = rgb.tobytes()
        channels = 3
        if "A" in i.getbands():
            a = i.getchannel("A").tobytes()
            data = b"".join(data[p * 3:p * 3 + 3] + a[p:p + 1] for p in range(len(a)))
            channels = 4
        frames.append((rgb.size, channels, data))
    (w, h), c, _ = frames[0]
    lines = [f"{len(frames)} {w} {h} {c}"]
    for size, channels, data in frames:
        assert size == (w, h) and channels == c
        for y in range(h):
            lines.append(data[y * w * c:(y + 1) * w * c].hex())
    with open(path + ".golden", "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    out = lambda name: os.path.join(HERE, name)
    base = pattern(13, 7, "RGB")
    for o in range(1, 9):
        base.save(out(f"orient{o}.jpg"), quality=90, exif=exif_bytes(o))
    pattern(11, 5, "L").save(out("gray.jpg"), quality=85)
    pattern(9, 6, "CMYK").save(out("cmyk.jpg"), quality=95)
    pattern(20, 18, "RGB", 1).save(out("progressive.jpg"), quality=75, progressive=True)
    pattern(10, 6, "RGBA").save(out("alpha.webp"), quality=80)
    pattern(7, 5, "RGB").save(out("lossless.webp"), lossless=True)
    pattern(6, 4, "RGB").save(out("orient6.webp"), lossless=True, exif=exif_bytes(6))
    frames = [pattern(8, 6, "RGBA", s) for s in range(3)]
    frames[0].save(out("animated.webp"), save_all=True, append_images=frames[1:], lossless=True, duration=100)
    for name in os.listdir(HERE):
        if name.endswith((".jpg", ".webp")):
            golden(out(name))
    # Fuzz seeds: tiny files of each format.
    os.makedirs(FUZZ, exist_ok=True)
    pattern(4, 3, "RGB").save(os.path.join(FUZZ, "seed.jpg"), quality=50, exif=exif_bytes(6))
    pattern(3, 2, "CMYK").save(os.path.join(FUZZ, "seed_cmyk.jpg"), quality=50)
    pattern(4, 3, "RGBA").save(os.path.join(FUZZ, "seed.webp"), quality=50)
    pattern(3, 2, "RGBA").save(os.path.join(FUZZ, "seed_lossless.webp"), lossless=True)
    small = [pattern(3, 2, "RGBA", s) for s in range(2)]
    small[0].save(os.path.join(FUZZ, "seed_anim.webp"), save_all=True, append_images=small[1:], lossless=True)
    pattern(4, 3, "RGBA").save(os.path.join(FUZZ, "seed.png"))


if __name__ == "__main__":
    sys.exit(main())
