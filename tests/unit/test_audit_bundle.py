"""The offline audit bundle: exported from a real ledger, store and signer; any byte counts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from activities.ledger import decision_entry_body
from cli.audit_bundle import bundle_app
from signgate.attestation import issue_attestation
from signgate.audit_bundle import BundleReport, export_bundle, verify_bundle
from signgate.evidence import LocalEvidenceStore
from signgate.hashing import sha256_hex
from signgate.ledger import SqliteLedger
from signgate.models import (
    Action,
    ArtifactKind,
    AttestationClaims,
    CaptureMetadata,
    CheckKind,
    CheckResult,
    CheckStatus,
    CommitRequest,
    Decision,
    LedgerReceipt,
    Mode,
    PolicyRef,
    RiskTier,
)
from signgate.sealing import seal_round
from signgate.settings import get_settings
from signgate.signer import Signer

SESSION = "sess-alpha-0001"
OTHER = "sess-bravo-0002"
OTHER_SECRET = "bravo-private-subject-ref-XYZZY"
NONCE = "nonce-alpha"


@dataclass
class World:
    root: Path
    signer: Signer
    ledger: SqliteLedger
    store: LocalEvidenceStore

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def export(self, name: str = "bundle", session: str = SESSION, media: bool = False) -> Path:
        out = self.root / name
        export_bundle(self.ledger, self.keys_dir, self.store, session, out, include_media=media)
        return out


def _world(root: Path) -> World:
    signer = Signer.load_or_create(root / "keys")
    return World(
        root=root,
        signer=signer,
        ledger=SqliteLedger(root / "ledger.sqlite3", signer),
        store=LocalEvidenceStore(root / "evidence"),
    )


def _seal(world: World, session: str, tag: str) -> dict[str, object]:
    artifacts = [
        world.store.put_bytes(ArtifactKind.selfie, f"selfie of {tag}".encode(), "image/jpeg"),
        world.store.put_bytes(ArtifactKind.id_front, f"id card of {tag}".encode(), "image/jpeg"),
    ]
    record = seal_round(
        world.store,
        world.signer,
        session,
        1,
        artifacts,
        CaptureMetadata(challenge_nonce=NONCE),
        NONCE,
    )
    body = {**record.model_dump(mode="json"), "replay_explanations": []}
    world.ledger.append(session, "evidence_sealed", f"{session}:evidence_sealed:1", body)
    return body


def _checks(world: World, session: str, note: str) -> list[CheckResult]:
    checks = [
        CheckResult(
            kind=kind,
            status=CheckStatus.completed,
            risk_score=0.05,
            confidence=0.9,
            provider="sandbox",
            explanations=[note],
        )
        for kind in (CheckKind.liveness, CheckKind.deepfake, CheckKind.face_match)
    ]
    body = {"round": 1, "checks": [c.model_dump(mode="json") for c in checks]}
    world.ledger.append(session, "checks_completed", f"{session}:checks_completed:1", body)
    return checks


def _decide(
    world: World, session: str, checks: list[CheckResult], root: str, action: Action
) -> tuple[Decision, LedgerReceipt]:
    """A decision entry written with the same body builder as the commit activity."""
    decision = Decision(
        action=action,
        tier=RiskTier.green,
        risk_score=0.05,
        reasons=["all_checks_pass"],
        policy=PolicyRef(policy_id="default", version="1", sha256="ab" * 32),
    )
    body = decision_entry_body(
        CommitRequest(
            session_id=session,
            tenant_id="demo",
            mode=Mode.enforce,
            decision=decision,
            checks=checks,
            merkle_roots=[root],
        )
    )
    receipt = world.ledger.append(session, "decision", f"{session}:decision", body)
    return decision, receipt


def _claims(
    session: str, subject: str, decision: Decision, receipt: LedgerReceipt, root: str
) -> AttestationClaims:
    now = int(time.time())
    return AttestationClaims(
        sub=subject,
        sid=session,
        intent="sign loan agreement",
        decision=decision.action,
        tier=decision.tier,
        ledger_seq=receipt.seq,
        ledger_entry_hash=receipt.entry_hash,
        evidence_merkle_root=root,
        policy_id=decision.policy.policy_id,
        policy_version=decision.policy.version,
        policy_sha256=decision.policy.sha256,
        iat=now,
        exp=now + 900,
        jti=f"{session}:{receipt.entry_hash[:16]}",
    )


def _unlock(world: World, session: str, claims: AttestationClaims) -> str:
    """An unlock body shaped like activities/signing.py's."""
    token = issue_attestation(world.signer, claims)
    body = {
        "decision_seq": claims.ledger_seq,
        "attestation": token,
        "claims": claims.model_dump(mode="json"),
    }
    world.ledger.append(session, "signing_unlocked", f"{session}:signing_unlocked", body)
    return token


def _build(root: Path, *, unlock_names_other: bool = False) -> World:
    """SESSION from seal to unlock, with OTHER's entries interleaved (and one before)."""
    world = _world(root)
    other_seal = _seal(world, OTHER, OTHER_SECRET)  # seq 1: outside SESSION's segment
    seal = _seal(world, SESSION, "alpha")
    other_checks = _checks(world, OTHER, f"{OTHER_SECRET} looked nervous")
    checks = _checks(world, SESSION, "alpha looked fine")
    other_decision, other_receipt = _decide(
        world, OTHER, other_checks, str(other_seal["merkle_root"]), Action.accept
    )
    decision, receipt = _decide(world, SESSION, checks, str(seal["merkle_root"]), Action.accept)
    if unlock_names_other:
        claims = _claims(
            SESSION, "alpha-subject", other_decision, other_receipt, str(seal["merkle_root"])
        )
    else:
        claims = _claims(SESSION, "alpha-subject", decision, receipt, str(seal["merkle_root"]))
    _unlock(world, SESSION, claims)
    world.ledger.append(OTHER, "expired", f"{OTHER}:expired", {"note": OTHER_SECRET})
    return world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return _build(tmp_path)


def _failed(report: BundleReport) -> str:
    return "\n".join(f"{c.name}: {c.detail}" for c in report.failures)


def _bundle_files(bundle: Path) -> list[str]:
    return sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())


def _rewrite_manifest(bundle: Path) -> None:
    """What a forger would do after editing a file: make the manifest agree again."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = []
    for name in _bundle_files(bundle):
        if name != "manifest.json":
            data = (bundle / name).read_bytes()
            manifest["files"].append({"path": name, "sha256": sha256_hex(data), "size": len(data)})
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (bundle / "manifest.json").write_text(text)


def _edit_json(bundle: Path, name: str, edit: Callable[[Any], object]) -> None:
    value = json.loads((bundle / name).read_text())
    edit(value)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (bundle / name).write_text(text)
    _rewrite_manifest(bundle)


# --------------------------------------------------------------------------- a fresh bundle


def test_fresh_bundle_verifies(world: World) -> None:
    bundle = world.export()
    report = verify_bundle(bundle)
    assert report.ok, _failed(report)
    names = {c.name for c in report.checks}
    assert {"manifest", "keys", "entries", "chain", "evidence", "attestation", "media"} <= names
    assert set(_bundle_files(bundle)) == {
        "manifest.json",
        "entries.json",
        "chain.json",
        "evidence.json",
        "attestation.jws",
        "README.txt",
        f"keys/{world.signer.key_id}.pub.pem",
    }
    entries = json.loads((bundle / "entries.json").read_text())
    assert [e["entry_type"] for e in entries] == [
        "evidence_sealed",
        "checks_completed",
        "decision",
        "signing_unlocked",
    ]
    assert set(entries[0]) == {
        "seq",
        "session_id",
        "entry_type",
        "idempotency_key",
        "created_at",
        "body",
        "prev_hash",
        "entry_hash",
        "key_id",
        "signature_b64",
    }
    chain = json.loads((bundle / "chain.json").read_text())
    assert [link["seq"] for link in chain] == [2, 3, 4, 5, 6, 7]
    assert "2 other sessions' entries" in next(c.detail for c in report.checks if c.name == "chain")


def test_bundle_holds_no_private_key_and_no_other_session_data(world: World) -> None:
    bundle = world.export(media=True)
    assert verify_bundle(bundle).ok
    for name in _bundle_files(bundle):
        data = (bundle / name).read_bytes()
        for secret in (OTHER_SECRET.encode(), OTHER.encode(), b"PRIVATE KEY"):
            assert secret not in data, f"{secret!r} leaked into {name}"
    # The other session's evidence is not in media/ either.
    other_refs = world.ledger.entries(OTHER)[0].body["artifacts"]
    assert not any((bundle / "media" / ref["sha256"]).exists() for ref in other_refs)


def test_session_that_was_not_unlocked_verifies_without_attestation(tmp_path: Path) -> None:
    world = _world(tmp_path)
    seal = _seal(world, SESSION, "alpha")
    checks = _checks(world, SESSION, "fine")
    _decide(world, SESSION, checks, str(seal["merkle_root"]), Action.reject)
    report = verify_bundle(world.export())
    assert report.ok, _failed(report)
    assert not (tmp_path / "bundle" / "attestation.jws").exists()


# --------------------------------------------------------------------------- any byte counts

FILES = [
    "manifest.json",
    "entries.json",
    "chain.json",
    "evidence.json",
    "attestation.jws",
    "README.txt",
    "keys/",
    "media/",
]


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("target", FILES)
def test_flipping_one_byte_in_any_file_fails_naming_it(
    world: World, target: str, where: str
) -> None:
    bundle = world.export(media=True)
    name = next(f for f in _bundle_files(bundle) if f.startswith(target))
    data = bytearray((bundle / name).read_bytes())
    index = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    data[index] ^= 0x01
    (bundle / name).write_bytes(bytes(data))

    report = verify_bundle(bundle)
    assert not report.ok
    assert any(name in c.name or name in c.detail for c in report.failures), _failed(report)


def test_edited_entry_fails_even_with_a_consistent_manifest(world: World) -> None:
    bundle = world.export()

    def edit(entries: list[dict[str, object]]) -> None:
        body = entries[2]["body"]
        assert isinstance(body, dict)
        body["decision"]["action"] = "reject"

    _edit_json(bundle, "entries.json", edit)
    report = verify_bundle(bundle)
    assert not report.ok
    failed = {c.name: c.detail for c in report.failures}
    assert "entry hash does not recompute" in failed["entries"]
    assert "manifest" not in failed


def test_dropped_chain_link_fails(world: World) -> None:
    bundle = world.export()
    _edit_json(bundle, "chain.json", lambda chain: chain.pop(1))
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert "chain" in failed


def test_forged_foreign_link_fails(world: World) -> None:
    bundle = world.export()

    def edit(chain: list[dict[str, object]]) -> None:
        chain[1]["entry_hash"] = "00" * 32  # seq 3 is the other session's

    _edit_json(bundle, "chain.json", edit)
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert "chain" in failed


def test_edited_seal_fails(world: World) -> None:
    bundle = world.export()

    def edit(seals: list[dict[str, dict[str, object]]]) -> None:
        seals[0]["seal"]["flags"] = []
        seals[0]["seal"]["merkle_root"] = "11" * 32

    _edit_json(bundle, "evidence.json", edit)
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert "evidence" in failed


def test_unlisted_file_fails(world: World) -> None:
    bundle = world.export()
    (bundle / "notes.txt").write_text("trust me")
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert "notes.txt" in failed["unlisted files"]


def test_missing_file_fails(world: World) -> None:
    bundle = world.export()
    (bundle / "attestation.jws").unlink()
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert "file attestation.jws" in failed


# --------------------------------------------------------------------------- attestation


def test_attestation_naming_an_entry_outside_the_bundle_fails(tmp_path: Path) -> None:
    world = _build(tmp_path, unlock_names_other=True)
    report = verify_bundle(world.export())
    failed = {c.name: c.detail for c in report.failures}
    assert "not in the bundle" in failed["attestation"]
    assert set(failed) == {"attestation"}


def test_replaced_attestation_fails_even_if_validly_signed(world: World) -> None:
    bundle = world.export()
    entries = json.loads((bundle / "entries.json").read_text())
    decision = next(e for e in entries if e["entry_type"] == "decision")
    forged = AttestationClaims.model_validate(
        {**entries[-1]["body"]["claims"], "ledger_seq": 999, "ledger_entry_hash": "22" * 32}
    )
    assert decision["seq"] != 999
    (bundle / "attestation.jws").write_text(issue_attestation(world.signer, forged))
    _rewrite_manifest(bundle)
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert set(failed) == {"attestation"}


# --------------------------------------------------------------------------- media


def test_media_bundle_verifies(world: World) -> None:
    bundle = world.export(media=True)
    report = verify_bundle(bundle)
    assert report.ok, _failed(report)
    media = [f for f in _bundle_files(bundle) if f.startswith("media/")]
    assert len(media) == 2
    for name in media:
        assert sha256_hex((bundle / name).read_bytes()) == name.removeprefix("media/")


@pytest.mark.parametrize("fix_manifest", [False, True])
def test_swapped_media_fails(world: World, fix_manifest: bool) -> None:
    bundle = world.export(media=True)
    first, second = sorted((bundle / "media").iterdir())
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    if fix_manifest:
        _rewrite_manifest(bundle)
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert "media" in failed
    assert "hashes to" in failed["media"]


def test_foreign_media_fails(world: World) -> None:
    bundle = world.export(media=True)
    victim = sorted((bundle / "media").iterdir())[0]
    victim.unlink()
    data = b"some other face"
    (bundle / "media" / sha256_hex(data)).write_bytes(data)
    _rewrite_manifest(bundle)
    failed = {c.name: c.detail for c in verify_bundle(bundle).failures}
    assert "not one of the sealed artifacts" in failed["media"]


# --------------------------------------------------------------------------- export refusals


def test_export_refuses_unknown_session_and_non_empty_out(world: World) -> None:
    from signgate.audit_bundle import BundleError

    with pytest.raises(BundleError):
        world.export(session="nobody-here")
    (world.root / "busy").mkdir()
    (world.root / "busy" / "x").write_text("x")
    with pytest.raises(BundleError):
        world.export(name="busy")


def test_verify_of_garbage_directory_does_not_crash(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    report = verify_bundle(tmp_path)
    assert not report.ok
    assert "manifest" in {c.name for c in report.failures}


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    var = tmp_path / "var"
    world = _build(var)
    monkeypatch.setenv("SIGNGATE_VAR_DIR", str(var))
    get_settings.cache_clear()
    assert get_settings().ledger_path == world.ledger.path
    yield world
    get_settings.cache_clear()


def test_cli_export_and_verify(cli_world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(bundle_app, ["export", SESSION, "--out", str(out), "--include-media"])
    assert result.exit_code == 0, result.output
    assert (out / "media").is_dir()

    result = runner.invoke(bundle_app, ["verify-bundle", str(out)])
    assert result.exit_code == 0, result.output
    assert "bundle ok" in result.output

    result = runner.invoke(bundle_app, ["verify-bundle", str(out), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ok"] is True

    chain = out / "chain.json"
    chain.write_bytes(chain.read_bytes().replace(b'"seq": 3', b'"seq": 4'))
    result = runner.invoke(bundle_app, ["verify-bundle", str(out)])
    assert result.exit_code == 1
    assert "file chain.json" in result.output
    assert "chain" in result.output


def test_cli_usage_errors_exit_2(cli_world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(bundle_app, ["export", "no-such-session", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "session_unknown" in result.output
    assert runner.invoke(bundle_app, ["export", SESSION]).exit_code == 2  # no --out
    assert runner.invoke(bundle_app, ["verify-bundle", str(tmp_path / "nope")]).exit_code == 2
    result = runner.invoke(
        bundle_app,
        ["export", SESSION, "--out", str(tmp_path / "o"), "--ledger", str(tmp_path / "x.db")],
    )
    assert result.exit_code == 2
    assert "ledger_missing" in result.output
