#!/usr/bin/env python3
"""Writes the image fuzzer's PNG and BMP seeds (tests/fuzz/corpus/image/) with the standard
library only, one small file per decoder path: PNG colour types 0/2/3/4/6, bit depths 1/8/16,
Adam7 interlacing, every row filter; BMP 24/32-bit, 8-bit palette, RLE8, top-down.
The JPEG seeds (baseline 16x16 JFIF and raw, 2x2) are copied from CPython's Lib/test/imghdrdata
and IPython's tests (see docs/HARDENING.md)."""
import os
import struct
import sys
import zlib

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "image")
os.makedirs(out, exist_ok=True)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(name, w, h, bit_depth, color_type, rows, palette=None, interlace=0, trns=None):
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, interlace)
    body = chunk(b"IHDR", ihdr)
    if palette:
        body += chunk(b"PLTE", bytes(palette))
    if trns:
        body += chunk(b"tRNS", bytes(trns))
    body += chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body)


def raw_rows(w, h, bpp_bytes, filt=lambda y: 0):
    data = b""
    for y in range(h):
        data += bytes([filt(y)]) + bytes(((x * 37 + y * 11 + c * 5) & 0xFF) for x in range(w) for c in range(bpp_bytes))
    return data


png("rgb8_filters.png", 7, 5, 8, 2, raw_rows(7, 5, 3, lambda y: y % 5))
png("rgba8.png", 4, 4, 8, 6, raw_rows(4, 4, 4, lambda y: 4 - y % 5))
png("gray8.png", 5, 3, 8, 0, raw_rows(5, 3, 1, lambda y: 1))
png("graya8.png", 3, 3, 8, 4, raw_rows(3, 3, 2))
png("gray1.png", 9, 2, 1, 0, b"\x00\xaa\x80\x00\x55\x00")
png("rgb16.png", 3, 2, 16, 2, raw_rows(3, 2, 6))
png("palette8_trns.png", 4, 3, 8, 3, b"".join(bytes([0]) + bytes((x + y) % 4 for x in range(4)) for y in range(3)),
    palette=[255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9], trns=[255, 128])
# Adam7 interlaced 8x8 RGB: 7 passes, each its own sub-image with filter bytes.
passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
data = b""
for x0, y0, dx, dy in passes:
    pw, ph = len(range(x0, 8, dx)), len(range(y0, 8, dy))
    data += raw_rows(pw, ph, 3, lambda y: 2)
png("adam7_rgb8.png", 8, 8, 8, 2, data, interlace=1)


def bmp(name, w, h, bpp, pixels, palette=b"", compression=0, top_down=False):
    header_size = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, compression, len(pixels), 2835, 2835,
                       len(palette) // 4, 0)
    head = b"BM" + struct.pack("<IHHI", header_size + len(pixels), 0, 0, header_size)
    with open(os.path.join(out, name), "wb") as f:
        f.write(head + info + palette + pixels)


def bmp_rows(w, h, bpp_bytes):
    stride = (w * bpp_bytes + 3) // 4 * 4
    return b"".join(bytes(((x * 13 + y * 7 + c) & 0xFF) for x in range(w) for c in range(bpp_bytes)).ljust(stride, b"\0")
                    for y in range(h))


bmp("rgb24.bmp", 5, 3, 24, bmp_rows(5, 3, 3))
bmp("rgb32_topdown.bmp", 3, 2, 32, bmp_rows(3, 2, 4), top_down=True)
pal = b"".join(bytes([i * 60 % 256, i * 20 % 256, 255 - i, 0]) for i in range(4))
bmp("pal8.bmp", 6, 2, 8, b"".join(bytes((x + y) % 4 for x in range(6)).ljust(8, b"\0") for y in range(2)), palette=pal)
# RLE8: a run of 4 of colour 1, an absolute run of 2, end of line, end of bitmap.
bmp("rle8.bmp", 6, 2, 8, b"\x04\x01\x00\x02\x02\x03\x00\x00\x06\x02\x00\x01", palette=pal, compression=1)
print("wrote", len(os.listdir(out)), "files to", out)
