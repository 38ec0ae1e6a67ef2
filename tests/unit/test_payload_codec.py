"""The Temporal payload codec: AES-256-GCM, key ids, rotation, pass-through, refusals."""

from __future__ import annotations

import base64
import multiprocessing
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from signgate.envelope import default_data_keys
from signgate.errors import BadInput
from signgate.models import OnboardingRequest
from signgate.payload_codec import (
    ENCODING,
    KEY_ID_META,
    AesGcmPayloadCodec,
    PayloadKeyMissing,
    PayloadKeys,
    PayloadKeyUnknown,
    PayloadTampered,
    codec_for,
    existing_codec_for,
    key_files,
    load_or_create_keys,
    payload_key_id,
    rotate_key,
)
from signgate.settings import Settings
from workers.client import data_converter

OLD_KEY = b"o" * 32
NEW_KEY = b"n" * 32


def request() -> OnboardingRequest:
    return OnboardingRequest(
        session_id="sess-codec-1",
        tenant_id="acme",
        subject_ref="applicant-ada-lovelace",
        intent="sign:mortgage-for-ada",
        callback_url="https://app.example/ada",
    )


def plain(data: bytes = b'{"subject_ref": "applicant-ada-lovelace"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_encrypted_payload_names_its_key_and_hides_the_data() -> None:
    codec = AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY]))
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_META] == payload_key_id(NEW_KEY).encode()
    assert b"ada" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [plain()]


async def test_same_payload_encrypts_differently_each_time() -> None:
    codec = AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY]))
    first, second = await codec.encode([plain(), plain()])
    assert first.data != second.data  # a fresh nonce per payload


async def test_data_converter_round_trips_a_model_with_no_pii_on_the_wire() -> None:
    converter = data_converter(AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY])))
    payloads = await converter.encode([request()])
    wire = b"".join(p.SerializeToString() for p in payloads)
    for pii in (b"ada-lovelace", b"mortgage-for-ada", b"app.example"):
        assert pii not in wire
    assert await converter.decode(payloads, [OnboardingRequest]) == [request()]


async def test_after_rotation_new_key_encrypts_and_old_payloads_still_decrypt() -> None:
    before = AesGcmPayloadCodec(PayloadKeys.of([OLD_KEY]))
    after = AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY, OLD_KEY]))
    [old_sealed] = await before.encode([plain()])
    [new_sealed] = await after.encode([plain()])
    assert new_sealed.metadata[KEY_ID_META] == payload_key_id(NEW_KEY).encode()
    assert await after.decode([old_sealed, new_sealed]) == [plain(), plain()]


async def test_payloads_without_our_encoding_pass_through_decode() -> None:
    codec = AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY]))
    untouched = [plain(), Payload(metadata={"encoding": b"binary/null"})]
    assert await codec.decode(untouched) == untouched


async def test_unknown_key_id_is_refused_not_passed_through() -> None:
    [sealed] = await AesGcmPayloadCodec(PayloadKeys.of([OLD_KEY])).encode([plain()])
    with pytest.raises(PayloadKeyUnknown):
        await AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY])).decode([sealed])


async def test_changed_ciphertext_fails_authentication() -> None:
    codec = AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY]))
    [sealed] = await codec.encode([plain()])
    flipped = bytes([sealed.data[-1] ^ 1])
    forged = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + flipped)
    with pytest.raises(PayloadTampered):
        await codec.decode([forged])


async def test_relabelled_key_id_fails_authentication() -> None:
    """The key id is associated data: moving a payload under another key id is caught even
    when that key is held."""
    codec = AesGcmPayloadCodec(PayloadKeys.of([NEW_KEY, OLD_KEY]))
    [sealed] = await codec.encode([plain()])
    relabelled = Payload(
        metadata={"encoding": ENCODING, KEY_ID_META: payload_key_id(OLD_KEY).encode()},
        data=sealed.data,
    )
    with pytest.raises(PayloadTampered):
        await codec.decode([relabelled])


def test_key_files_are_created_once_and_rotation_keeps_older_keys(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)
    assert load_or_create_keys(tmp_path) == first
    rotated = rotate_key(tmp_path)
    assert rotated.active_id != first.active_id
    assert set(rotated.keys) == {first.active_id, rotated.active_id}
    assert len(key_files(tmp_path)) == 2
    assert all(p.stat().st_mode & 0o077 == 0 for p in key_files(tmp_path))


def _first_key_id(keys_dir: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(load_or_create_keys(Path(keys_dir)).active_id)


def test_workers_starting_together_agree_on_one_first_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_first_key_id, args=(str(tmp_path), out)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert len({out.get(timeout=5) for _ in procs}) == 1
    assert len(key_files(tmp_path)) == 1


def test_settings_keys_win_over_files_and_the_first_encrypts(tmp_path: Path) -> None:
    encoded = [base64.b64encode(k).decode() for k in (NEW_KEY, OLD_KEY)]
    settings = Settings(var_dir=tmp_path, payload_keys=encoded)  # type: ignore[arg-type]
    codec = codec_for(settings)
    assert codec.active_key_id == payload_key_id(NEW_KEY)
    assert set(codec.key_ids) == {payload_key_id(NEW_KEY), payload_key_id(OLD_KEY)}
    assert key_files(settings.keys_dir) == []  # no file key was made


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_configured_key_is_refused(tmp_path: Path, bad: str) -> None:
    settings = Settings(var_dir=tmp_path, payload_keys=[bad])  # type: ignore[list-item]
    with pytest.raises(BadInput) as err:
        codec_for(settings)
    assert err.value.reason == "payload_key_invalid"


def test_a_reader_without_keys_creates_none(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    assert existing_codec_for(settings) is None
    assert key_files(settings.keys_dir) == []
    codec_for(settings)
    assert existing_codec_for(settings) is not None


def test_a_lost_payload_key_is_not_silently_replaced(tmp_path: Path) -> None:
    """Once sessions ran here (their evidence keys exist), a missing payload key means
    histories encrypted under it: refuse to start rather than mint a key that cannot read
    them."""
    first = load_or_create_keys(tmp_path)
    default_data_keys(tmp_path).key_for("sess-a")  # a session's evidence key: sessions ran
    [key_file] = key_files(tmp_path)
    backup = key_file.read_bytes()
    key_file.unlink()
    with pytest.raises(PayloadKeyMissing, match="restore it from a backup") as refused:
        load_or_create_keys(tmp_path)
    assert refused.value.reason == "payload_key_missing"
    assert key_files(tmp_path) == []  # nothing minted
    key_file.write_bytes(backup)
    assert load_or_create_keys(tmp_path) == first
