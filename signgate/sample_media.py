"""Small synthetic media for the demo and the tests: a unique MP4 container per call.

The liveness video is probed (container structure), never decoded, so the demo's video is
a structurally valid MP4 (ftyp, moov with a movie header, mdat) around random bytes: no
codec or encoder is needed to make one, and no two are alike (no capture is a replay).
"""

from __future__ import annotations

import os
import struct


def box(box_type: bytes, payload: bytes) -> bytes:
    """One MP4 box: 32-bit size, 4-byte type, payload."""
    return struct.pack(">I4s", 8 + len(payload), box_type) + payload


def mp4_bytes(label: str, payload_bytes: int = 2048) -> bytes:
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    # mvhd v0: flags, created, modified, timescale 1000, duration 1 s, rate, volume, matrix...
    mvhd = box(
        b"mvhd",
        struct.pack(">I I I I I I H 10x 36x 24x I", 0, 0, 0, 1000, 1000, 0x10000, 0x100, 2),
    )
    moov = box(b"moov", mvhd + box(b"udta", box(b"name", label.encode()[:64])))
    return ftyp + moov + box(b"mdat", os.urandom(payload_bytes))
