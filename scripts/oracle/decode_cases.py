"""Reference decodes of PNG and JPEG files by OpenCV, for eval/src/image.rs.

PaddleOCR's DecodeImage calls `cv2.imdecode(bytes, IMREAD_COLOR)` (or `IMREAD_GRAYSCALE` for img_mode GRAY, with
`IMREAD_IGNORE_ORIENTATION` when ignore_orientation is set). This writes small images in the variants an eval set
may hold, and what OpenCV decodes from each, into eval/tests/fixtures/decode/:

    <name>.png / <name>.jpg          the encoded file (written by OpenCV or Pillow)
    <name>.<mode>.raw                OpenCV's decoded pixels, row-major, BGR interleaved (gray: one channel)
    cases.json                       [{"file", "mode": "color" | "gray" | "color_ignore_orientation",
                                       "shape": [h, w, c], "raw", "exact": bool, "what"}]

PNG decodes are expected bit-exact ("exact": true); JPEG decodes are compared by mean and max absolute difference,
since libjpeg-turbo's IDCT and chroma upsampling are not the Rust decoder's.

Needs (a scratch venv outside the repo): numpy==2.4.6 opencv-python-headless==4.10.0.84 pillow==13.0.0
(OpenCV 4.10.0 bundles libjpeg-turbo 3.0.3 and libpng 1.6.43). Deterministic (seeded).

    python scripts/oracle/decode_cases.py [out_dir]
"""

import io
import json
import os
import sys

import cv2
import numpy as np
from PIL import Image

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "decode")


def scene(rng, h, w):
    """A BGR image that looks a little like a document: a tinted gradient, dark strokes, colour noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack(
        [200 + 40 * np.sin(xx / 7.0 + c) * np.cos(yy / 5.0 - c) for c in range(3)], axis=-1
    )
    for _ in range(rng.integers(3, 7)):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        hh, ww = int(rng.integers(1, max(2, h // 3))), int(rng.integers(1, max(2, w // 2)))
        base[y0 : y0 + hh, x0 : x0 + ww] = rng.integers(0, 120, 3)
    base += rng.normal(0, 12, base.shape)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def adam7_png(rgb):
    """An Adam7-interlaced 8-bit RGB PNG, every scanline unfiltered."""
    import struct
    import zlib

    h, w, _ = rgb.shape
    raw = b""
    for y0, x0, dy, dx in [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            for row in sub:
                raw += b"\x00" + row.tobytes()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    cases = []

    def write(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    def decode(name, data, exact, what, modes=("color", "gray")):
        write(name, data)
        flags = {
            "color": cv2.IMREAD_COLOR,
            "gray": cv2.IMREAD_GRAYSCALE,
            "color_ignore_orientation": cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
        }
        for mode in modes:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flags[mode])
            assert img is not None, name
            if img.ndim == 2:
                img = img[:, :, None]
            raw = f"{name}.{mode}.raw"
            write(raw, np.ascontiguousarray(img).tobytes())
            cases.append(
                {"file": name, "mode": mode, "shape": list(img.shape), "raw": raw, "exact": exact, "what": what}
            )

    def cv_jpeg(img, params):
        ok, buf = cv2.imencode(".jpg", img, params)
        assert ok
        return buf.tobytes()

    def pil_bytes(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    # JPEG: OpenCV's and Pillow's encoders, baseline and progressive, 4:2:0, 4:2:2 and 4:4:4, odd sizes.
    big = scene(rng, 72, 96)
    odd = scene(rng, 37, 61)
    decode("cv_420_q90.jpg", cv_jpeg(big, [cv2.IMWRITE_JPEG_QUALITY, 90]), False, "OpenCV baseline 4:2:0")
    decode(
        "cv_444_q95.jpg",
        cv_jpeg(big, [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
        False,
        "OpenCV baseline 4:4:4",
    )
    decode(
        "cv_422_q75.jpg",
        cv_jpeg(odd, [cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]),
        False,
        "OpenCV baseline 4:2:2, odd size",
    )
    decode(
        "cv_420_prog.jpg",
        cv_jpeg(odd, [cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        False,
        "OpenCV progressive 4:2:0, odd size",
    )
    rgb = Image.fromarray(big[:, :, ::-1].copy())
    rgb_odd = Image.fromarray(odd[:, :, ::-1].copy())
    decode("pil_420_q80.jpg", pil_bytes(rgb, "JPEG", quality=80, subsampling=2), False, "Pillow baseline 4:2:0")
    decode("pil_444_q92.jpg", pil_bytes(rgb_odd, "JPEG", quality=92, subsampling=0), False, "Pillow baseline 4:4:4, odd size")
    decode(
        "pil_420_prog.jpg",
        pil_bytes(rgb, "JPEG", quality=70, subsampling=2, progressive=True),
        False,
        "Pillow progressive 4:2:0",
    )
    decode(
        "pil_444_prog.jpg",
        pil_bytes(rgb_odd, "JPEG", quality=90, subsampling=0, progressive=True),
        False,
        "Pillow progressive 4:4:4, odd size",
    )
    gray = Image.fromarray(cv2.cvtColor(odd, cv2.COLOR_BGR2GRAY))
    decode("pil_gray.jpg", pil_bytes(gray, "JPEG", quality=85), False, "Pillow grayscale JPEG")
    decode("cv_1x1.jpg", cv_jpeg(big[:1, :1], [cv2.IMWRITE_JPEG_QUALITY, 90]), False, "OpenCV 1x1")
    ex = Image.Exif()
    ex[0x0112] = 6
    decode(
        "pil_exif6.jpg",
        pil_bytes(rgb_odd, "JPEG", quality=95, subsampling=0, exif=ex.tobytes()),
        False,
        "Pillow 4:4:4 with EXIF orientation 6 (rotate 90 clockwise)",
        modes=("color", "gray", "color_ignore_orientation"),
    )

    # PNG: every colour type and bit depth OpenCV reads, expected bit-exact.
    small = scene(rng, 13, 22)
    rgb_small = Image.fromarray(small[:, :, ::-1].copy())
    decode("cv_rgb8.png", cv2.imencode(".png", small)[1].tobytes(), True, "OpenCV RGB 8-bit")
    rgba = np.dstack([small, rng.integers(0, 256, small.shape[:2], dtype=np.uint8)])
    decode("cv_rgba8.png", cv2.imencode(".png", rgba)[1].tobytes(), True, "OpenCV RGBA 8-bit (alpha dropped)")
    small16 = (small.astype(np.uint16) * 257 + rng.integers(0, 257, small.shape)).astype(np.uint16)
    decode("cv_rgb16.png", cv2.imencode(".png", small16)[1].tobytes(), True, "OpenCV RGB 16-bit")
    g = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    decode("cv_gray8.png", cv2.imencode(".png", g)[1].tobytes(), True, "OpenCV gray 8-bit")
    decode(
        "cv_gray16.png",
        cv2.imencode(".png", (g.astype(np.uint16) * 257 + 3).astype(np.uint16))[1].tobytes(),
        True,
        "OpenCV gray 16-bit",
    )
    la = Image.fromarray(np.dstack([g, 255 - g]), "LA")
    decode("pil_gray_alpha.png", pil_bytes(la, "PNG"), True, "Pillow gray + alpha")
    decode("pil_1bit.png", pil_bytes(Image.fromarray(g).convert("1"), "PNG"), True, "Pillow 1-bit gray")
    pal = rgb_small.quantize(colors=16)
    decode("pil_palette4.png", pil_bytes(pal, "PNG", bits=4), True, "Pillow 4-bit palette")
    pal_t = rgb_small.quantize(colors=200)
    decode("pil_palette_trns.png", pil_bytes(pal_t, "PNG", transparency=3), True, "Pillow 8-bit palette with tRNS")
    decode("adam7_rgb8.png", adam7_png(small[:, :, ::-1]), True, "Adam7-interlaced RGB 8-bit (neither OpenCV nor Pillow write these)")
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        decode(
            f"pil_exif{o}.png",
            pil_bytes(rgb_small, "PNG", exif=ex.tobytes()),
            True,
            f"Pillow RGB with an eXIf chunk, orientation {o}",
            modes=("color", "color_ignore_orientation") if o == 6 else ("color",),
        )

    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"{len(cases)} cases, {total} bytes in {out}")


if __name__ == "__main__":
    main()
