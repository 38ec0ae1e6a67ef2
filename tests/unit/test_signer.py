"""The one signer: key files, key ids, concurrent first start, and public-only verification."""

from __future__ import annotations

import hashlib
import multiprocessing
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from signgate.errors import BadInput, Fault
from signgate.signer import KeyRing, Signer, write_once

PROCESSES = 6
THREADS = 16


def test_signature_round_trips_through_a_public_key_ring(tmp_path: Path) -> None:
    signer = Signer.load_or_create(tmp_path)
    ring = KeyRing.from_pems([signer.public_key_pem()])
    signature = signer.sign(b"payload")
    assert ring.verify(signer.key_id, signature, b"payload")
    assert not ring.verify(signer.key_id, signature, b"payloaD")
    assert not ring.verify("0" * 16, signature, b"payload")


def test_key_id_is_sha256_of_raw_public_key_and_stable_across_reload(tmp_path: Path) -> None:
    first = Signer.load_or_create(tmp_path)
    again = Signer.load_or_create(tmp_path)
    raw = first.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert first.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert again.key_id == first.key_id
    assert again.sign(b"x") == first.sign(b"x")  # Ed25519 is deterministic: same key


def test_key_files_private_0600_public_pem_beside_it(tmp_path: Path) -> None:
    signer = Signer.load_or_create(tmp_path, name="unit")
    private = tmp_path / "unit.ed25519.pem"
    public = tmp_path / "unit.ed25519.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_bytes() == signer.public_key_pem()
    assert b"PRIVATE KEY" in private.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [private.name, public.name]


def test_key_ring_from_dir_reads_public_keys_only(tmp_path: Path) -> None:
    a = Signer.load_or_create(tmp_path, name="a")
    b = Signer.load_or_create(tmp_path, name="b")
    (tmp_path / "c.ed25519.pem").write_bytes(b"not a key at all")  # private-looking: ignored
    ring = KeyRing.from_dir(tmp_path)
    assert ring.key_ids == tuple(sorted([a.key_id, b.key_id]))
    assert ring.get(a.key_id) is not None and ring.get("nope") is None


def test_missing_keys_dir_gives_an_empty_ring(tmp_path: Path) -> None:
    assert len(KeyRing.from_dir(tmp_path / "absent")) == 0


def test_a_non_ed25519_public_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(BadInput) as err:
        KeyRing.from_pems([pem])
    assert err.value.reason == "key_invalid"


def test_public_key_file_of_another_key_is_refused(tmp_path: Path) -> None:
    Signer.load_or_create(tmp_path)
    other = Signer.load_or_create(tmp_path / "other")
    public = tmp_path / "signgate.ed25519.pub.pem"
    public.unlink()
    public.write_bytes(other.public_key_pem())
    with pytest.raises(Fault) as err:
        Signer.load_or_create(tmp_path)
    assert err.value.reason == "key_pair_mismatch"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_key_names_that_leave_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadInput):
        Signer.load_or_create(tmp_path, name=name)


def test_write_once_never_overwrites_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "k"
    assert write_once(target, b"first", mode=0o600)
    assert not write_once(target, b"second", mode=0o600)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_concurrent_threads_creating_the_key_all_get_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(THREADS)
    key_ids: list[str] = []

    def start() -> None:
        barrier.wait()
        key_ids.append(Signer.load_or_create(tmp_path).key_id)

    threads = [threading.Thread(target=start) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(key_ids) == THREADS
    assert set(key_ids) == {Signer.load_or_create(tmp_path).key_id}
    assert len(list(tmp_path.iterdir())) == 2  # one key pair, no temp files left


def _start_worker(keys_dir: str, barrier: object, out: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    out.put(Signer.load_or_create(Path(keys_dir)).key_id)  # type: ignore[attr-defined]


def test_concurrent_processes_creating_the_key_all_get_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_start_worker, args=(str(tmp_path), barrier, out))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    key_ids = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert len(set(key_ids)) == 1
    assert Signer.load_or_create(tmp_path).key_id == key_ids[0]
