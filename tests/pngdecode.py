"""A small pure-Python PNG decoder (zlib + the five scanline filters), enough to check screenshots
without Pillow: 8-bit greyscale, RGB and RGBA, non-interlaced."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from itertools import accumulate

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


@dataclass
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]  # unfiltered scanlines, `channels` bytes per pixel

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row, c = self.rows[y], self.channels
        px = row[x * c:(x + 1) * c]
        return (px[0], px[0], px[0]) if c <= 2 else (px[0], px[1], px[2])

    def colours(self, step: int = 1) -> dict[tuple[int, int, int], int]:
        """How many pixels (every `step`-th, both ways) have each RGB colour."""
        out: dict[tuple[int, int, int], int] = {}
        c = self.channels
        for y in range(0, self.height, step):
            row = self.rows[y]
            for x in range(0, self.width, step):
                i = x * c
                key = (row[i], row[i], row[i]) if c <= 2 else (row[i], row[i + 1], row[i + 2])
                out[key] = out.get(key, 0) + 1
        return out


def decode(data: bytes) -> Image:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat = 8, []
    width = height = depth = colour = interlace = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if width is None or depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = _CHANNELS[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1:start + 1 + stride]
        rows.append(prev := _unfilter(kind, line, prev, bpp))
    return Image(width, height, bpp, rows)


def _unfilter(kind: int, line: bytes, prev: bytes, bpp: int) -> bytes:
    if kind == 0:
        return bytes(line)
    if kind == 1:  # Sub: a running sum per channel
        out = bytearray(len(line))
        for ch in range(bpp):
            out[ch::bpp] = bytes(accumulate(line[ch::bpp], lambda a, b: (a + b) & 255))
        return bytes(out)
    if kind == 2:  # Up
        return bytes((a + b) & 255 for a, b in zip(line, prev))
    out = bytearray(line)
    if kind == 3:  # Average
        for i in range(len(out)):
            left = out[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + ((left + prev[i]) >> 1)) & 255
        return bytes(out)
    if kind == 4:  # Paeth
        for i in range(len(out)):
            a = out[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        return bytes(out)
    raise ValueError(f"bad PNG filter type {kind}")
