"""Evidence ingest: streaming upload + hash + store of 1 MB / 100 MB / 1 GB files through
the gateway (`PUT /v1/sessions/{id}/evidence/liveness_video`, over loopback HTTP) against
`sha256sum` of the same file, and the gateway process's peak RSS during each upload.

The gateway runs as its own process (`signgate gateway`), so its RSS is its own; psutil
samples it every 10 ms while the upload runs. The upload cap for videos is raised to
2 GiB for this run (`SIGNGATE_MAX_UPLOAD_BYTES`). Both sides read a file the page cache
already holds (sha256sum runs first, and the upload right after).

Run: .venv/bin/python -m bench.ingest [--sizes-mb 1,100,1024]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil

from bench.results import Result, ratio
from chaos.stack import Stack, StackConfig
from signgate.client import GatewayClient
from signgate.sample_media import mp4_bytes

MiB = 1024 * 1024
CHUNK = 1 * MiB


def make_file(path: Path, size: int) -> str:
    """`size` bytes that the gateway accepts as a liveness video: an MP4 header (the
    gateway probes the container) and one `mdat` box of incompressible bytes."""
    digest = hashlib.sha256()
    header = mp4_bytes("bench", payload_bytes=0)[:-8]  # ftyp + moov, without the empty mdat
    header += struct.pack(">I4s", size - len(header), b"mdat")
    block = os.urandom(CHUNK)  # incompressible; rotate so no two MiB are equal
    with path.open("wb") as f:
        f.write(header)
        digest.update(header)
        size -= len(header)
        for i in range(0, size, CHUNK):
            chunk = (block[i % 997 :] + block[: i % 997])[: min(CHUNK, size - i)]
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def sha256sum_s(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


class PeakRss:
    """Samples a process's RSS in a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self.peak = self.start = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


async def upload_s(stack: Stack, path: Path, sha256: str) -> float:
    settings = stack.settings
    async with GatewayClient(settings.gateway_url, settings.api_key_for("app")) as app:
        created = await app.create_session(subject_ref="bench-ingest", intent="sign:bench")
    sid = created["session_id"]
    headers = {
        "X-API-Key": settings.api_key_for("app"),
        "X-Content-SHA256": sha256,
        "Content-Type": "video/mp4",
        "Content-Length": str(path.stat().st_size),
    }
    async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=600) as http:
        started = time.perf_counter()
        response = await http.put(
            f"/v1/sessions/{sid}/evidence/liveness_video",
            content=file_chunks(path),
            headers=headers,
        )
        elapsed = time.perf_counter() - started
    response.raise_for_status()
    assert response.json()["sha256"] == sha256
    return elapsed


async def measure(sizes_mb: list[int]) -> Result:
    rows: list[list[str]] = []
    plot: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        config = StackConfig(var_dir=root / "var", max_upload_bytes={"liveness_video": 2048 * MiB})
        async with Stack(config) as stack:
            await stack.start(workers=1)
            assert stack.gateway is not None
            for size_mb in sizes_mb:
                path = root / f"upload-{size_mb}.bin"
                sha256 = make_file(path, size_mb * MiB)
                before = sha256sum_s(path)
                with PeakRss(stack.gateway.pid) as rss:
                    elapsed = await upload_s(stack, path, sha256)
                baseline = (before + sha256sum_s(path)) / 2  # before and after: load drifts
                path.unlink()
                base_rate, rate = size_mb / baseline, size_mb / elapsed
                rows.append([
                    f"{size_mb:,} MB", f"{base_rate:,.0f}", f"{rate:,.0f}",
                    f"**{ratio(rate, base_rate)}**",
                    f"{rss.start / MiB:.0f}", f"{rss.peak / MiB:.0f}",
                ])  # fmt: skip
                plot[f"ingest {size_mb} MB (x sha256sum)"] = rate / base_rate
    return Result(
        title="3. Evidence ingest through the gateway",
        notes=(
            "Streaming `PUT` of one file over loopback HTTP: the gateway hashes while it "
            "writes to the evidence store and compares with `X-Content-SHA256`. Baseline: "
            "`sha256sum` of the same (page-cached) file, the mean of a run just before and one "
            "just after the upload. RSS is the gateway process's "
            "(`signgate gateway`), sampled every 10 ms. Goal: >= 0.70x `sha256sum` at "
            "100 MB and above; RSS flat."
        ),
        header=[
            "size",
            "sha256sum MB/s",
            "gateway MB/s",
            "x sha256sum",
            "gateway RSS before MiB",
            "gateway peak RSS MiB",
        ],  # fmt: skip
        rows=rows,
        plot=plot,
    )


def run(sizes_mb: list[int] | None = None) -> Result:
    return asyncio.run(measure(sizes_mb or [1, 100, 1024]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", default="1,100,1024")
    args = parser.parse_args()
    run([int(s) for s in args.sizes_mb.split(",")]).print()


if __name__ == "__main__":
    main()
