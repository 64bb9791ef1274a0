"""A photo's ICC colour profile, read from a JPEG or PNG and written into a JPEG or PNG.

OpenCV reads pixels and writes no profile, so a photo taken in Display P3 (phones) came out
as the same numbers read as sRGB: duller reds and greens in every colour-managed viewer. The
profile says how to read the numbers, not who or where: it is kept, unlike the metadata.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_ICC_TAG = b"ICC_PROFILE\x00"  # a JPEG APP2 segment holding a piece of the profile
_JPEG_PIECE = 65519  # profile bytes per segment: 65535 - 2 (length) - 14 (tag, number, count)


def read_icc(path: Path) -> bytes | None:
    """The ICC profile of the JPEG or PNG file at `path`, or None (none, another format, or
    damaged: the photo is then written without one, as before)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        if data[:2] == b"\xff\xd8":
            return _jpeg_icc(data)
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return _png_icc(data)
    except (ValueError, IndexError, struct.error, zlib.error):
        return None
    return None


def with_icc(encoded: bytes, icc: bytes | None) -> bytes:
    """`encoded` (a JPEG or PNG file's bytes, as OpenCV writes them) with `icc` in it; as it
    is for no profile or another format."""
    if not icc:
        return encoded
    if encoded[:2] == b"\xff\xd8":
        return _jpeg_with(encoded, icc)
    if encoded[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_with(encoded, icc)
    return encoded


def _jpeg_segments(data: bytes):
    """(marker, payload start, payload end) of each segment before the image data."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: the segments are over
            return
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        yield marker, i + 4, i + 2 + length
        i += 2 + length


def _jpeg_icc(data: bytes) -> bytes | None:
    pieces: dict[int, bytes] = {}
    for marker, start, end in _jpeg_segments(data):
        if marker == 0xE2 and data[start : start + 12] == _ICC_TAG:
            pieces[data[start + 12]] = data[start + 14 : end]
    if not pieces:
        return None
    return b"".join(pieces[k] for k in sorted(pieces))


def _jpeg_with(data: bytes, icc: bytes) -> bytes:
    """The profile in APP2 segments after the JFIF/EXIF APP segments that must come first."""
    at = 2
    for marker, _, end in _jpeg_segments(data):
        if marker not in (0xE0, 0xE1):
            break
        at = end
    parts = [icc[k : k + _JPEG_PIECE] for k in range(0, len(icc), _JPEG_PIECE)]
    if len(parts) > 255:
        return data  # a profile over 16 MB: no JPEG holds it
    segments = b"".join(
        b"\xff\xe2" + struct.pack(">H", 2 + 14 + len(p)) + _ICC_TAG + bytes([n + 1, len(parts)]) + p
        for n, p in enumerate(parts)
    )
    return data[:at] + segments + data[at:]


def _png_chunks(data: bytes):
    """(type, payload start, payload end, chunk end) of each PNG chunk."""
    i = 8
    while i + 12 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        yield kind, i + 8, i + 8 + length, i + 12 + length
        if kind == b"IEND":
            return
        i += 12 + length


def _png_icc(data: bytes) -> bytes | None:
    for kind, start, end, _ in _png_chunks(data):
        if kind == b"iCCP":
            payload = data[start:end]
            name_end = payload.index(b"\x00")
            if payload[name_end + 1] != 0:  # compression method: only zlib (0) exists
                return None
            return zlib.decompress(payload[name_end + 2 :])
        if kind == b"IDAT":
            return None
    return None


def _png_with(data: bytes, icc: bytes) -> bytes:
    """The profile in an iCCP chunk right after IHDR (it must come before PLTE and IDAT)."""
    payload = b"ICC profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(payload)) + b"iCCP" + payload
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + payload) & 0xFFFFFFFF)
    for kind, _, _, chunk_end in _png_chunks(data):
        if kind == b"IHDR":
            return data[:chunk_end] + chunk + data[chunk_end:]
    return data
