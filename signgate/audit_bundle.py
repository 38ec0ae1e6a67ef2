"""An audit bundle: one session's evidence trail, checkable offline from the bundle alone.

`export_bundle` writes a directory an auditor can take away; `verify_bundle` checks it
using nothing but its own files (no ledger, no evidence store, no network):

    manifest.json        every other file with its sha256 and size (strict, re-serialized)
    entries.json         the session's ledger entries, every column
    chain.json           the link records (seq, prev_hash, entry_hash, key_id, signature)
                         of the contiguous ledger segment from the session's first entry
                         to its last, other sessions' entries included
    evidence.json        the seal records of the session's `evidence_sealed` entries
    attestation.jws      the signing attestation of the `signing_unlocked` entry, if any
    keys/<key_id>.pub.pem  public keys only
    media/<sha256>       the sealed artifacts themselves (only with `include_media`)
    README.txt           how to check all this by hand

Privacy: other sessions' entries appear in `chain.json` only as link records, never with
their bodies, session ids, types or idempotency keys. The session's own entries are fully
recomputed (hash from the canonical bytes, which cover `prev_hash`, then the signature);
for another session's entry only its signature over its `entry_hash` and the link
`next.prev_hash == this.entry_hash` can be checked, since its hash cannot be recomputed
without its bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from signgate.attestation import AttestationInvalid, verify_attestation
from signgate.errors import BadInput, SigngateError
from signgate.evidence import READ_CHUNK_BYTES, EvidenceStore
from signgate.hashing import is_sha256_hex, merkle_root, sha256_hex
from signgate.ledger import GENESIS_PREV_HASH, Ledger, recomputed_entry_hash
from signgate.models import AttestationClaims, Frozen, LedgerEntry
from signgate.sealing import SealRecord, verify_seal
from signgate.signer import KeyRing, public_pem

FORMAT = "signgate-audit-bundle/1"
MANIFEST = "manifest.json"
ENTRIES = "entries.json"
CHAIN = "chain.json"
EVIDENCE = "evidence.json"
ATTESTATION = "attestation.jws"
README = "README.txt"
KEYS_DIR = "keys"
MEDIA_DIR = "media"

_ALLOWED_PATH = re.compile(
    r"entries\.json|chain\.json|evidence\.json|attestation\.jws|README\.txt"
    r"|keys/[0-9a-f]{16}\.pub\.pem|media/[0-9a-f]{64}"
)
_ENTRY_COLUMNS = frozenset(LedgerEntry.model_fields)
_LINK_COLUMNS = ("seq", "prev_hash", "entry_hash", "key_id", "signature_b64")
_SEAL_FIELDS = frozenset(SealRecord.model_fields)


class BundleError(BadInput):
    """The bundle cannot be exported (unknown session, missing key or evidence)."""

    reason = "audit_bundle_error"


class BundleFile(Frozen):
    path: str
    sha256: str
    size: int


class BundleManifest(Frozen):
    format: str
    session_id: str
    include_media: bool
    files: list[BundleFile]


class BundleCheck(Frozen):
    name: str
    ok: bool
    detail: str = ""


class BundleReport(Frozen):
    ok: bool
    checks: list[BundleCheck]

    @property
    def failures(self) -> list[BundleCheck]:
        return [check for check in self.checks if not check.ok]


# --------------------------------------------------------------------------- export


def export_bundle(
    ledger: Ledger,
    keys_dir: Path,
    store: EvidenceStore,
    session_id: str,
    out: Path,
    include_media: bool = False,
) -> BundleManifest:
    """Write the bundle of `session_id` into `out` (created; must be absent or empty)."""
    entries = ledger.entries(session_id)
    if not entries:
        raise BundleError(f"no ledger entries for session {session_id!r}", reason="session_unknown")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} exists and is not an empty directory", reason="bundle_out_exists")
    first, last = entries[0].seq, entries[-1].seq
    segment = [ledger.get(seq) for seq in range(first, last + 1)]
    if any(entry is None for entry in segment):
        raise BundleError(f"ledger has a gap between seq {first} and {last}", reason="seq_gap")

    keyring = KeyRing.from_dir(keys_dir)
    seals = [_seal_of(entry) for entry in entries if entry.entry_type == "evidence_sealed"]
    unlocks = [entry for entry in entries if entry.entry_type == "signing_unlocked"]
    used_keys = {entry.key_id for entry in segment if entry is not None}
    used_keys |= {seal["seal"]["stamp_key_id"] for seal in seals}
    files: dict[str, bytes] = {
        ENTRIES: _json_bytes([entry.model_dump(mode="json") for entry in entries]),
        CHAIN: _json_bytes(
            [{column: getattr(entry, column) for column in _LINK_COLUMNS} for entry in segment]
        ),
        EVIDENCE: _json_bytes(seals),
        README: _readme(session_id).encode("utf-8"),
    }
    if unlocks:
        token = unlocks[-1].body.get("attestation")
        if isinstance(token, str):
            files[ATTESTATION] = token.encode("ascii")
            kid = _unverified_kid(token)
            if kid is not None:
                used_keys.add(kid)
    for key_id in sorted(used_keys):
        public_key = keyring.get(key_id)
        if public_key is None:
            raise BundleError(f"no public key {key_id!r} in {keys_dir}", reason="unknown_key")
        files[f"{KEYS_DIR}/{key_id}.pub.pem"] = public_pem(public_key)

    out.mkdir(parents=True, exist_ok=True)
    listed: list[BundleFile] = []
    for name, data in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        listed.append(BundleFile(path=name, sha256=sha256_hex(data), size=len(data)))
    if include_media:
        listed.extend(_copy_media(store, seals, out / MEDIA_DIR))
    manifest = BundleManifest(
        format=FORMAT,
        session_id=session_id,
        include_media=include_media,
        files=sorted(listed, key=lambda item: item.path),
    )
    (out / MANIFEST).write_bytes(_json_bytes(manifest.model_dump(mode="json")))
    return manifest


def _seal_of(entry: LedgerEntry) -> dict[str, Any]:
    seal = {name: value for name, value in entry.body.items() if name in _SEAL_FIELDS}
    return {"ledger_seq": entry.seq, "entry_hash": entry.entry_hash, "seal": seal}


def _copy_media(
    store: EvidenceStore, seals: list[dict[str, Any]], media_dir: Path
) -> list[BundleFile]:
    media_dir.mkdir(parents=True, exist_ok=True)
    copied: dict[str, BundleFile] = {}
    for seal in seals:
        for artifact in seal["seal"]["artifacts"]:
            digest = artifact["sha256"]
            if digest in copied:
                continue
            target = media_dir / digest
            with store.open(artifact["object_key"]) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, READ_CHUNK_BYTES)
            actual, size = _file_sha256(target)
            if actual != digest:
                raise BundleError(
                    f"stored artifact {digest} no longer matches its hash",
                    reason="evidence_hash_mismatch",
                )
            copied[digest] = BundleFile(path=f"{MEDIA_DIR}/{digest}", sha256=actual, size=size)
    return list(copied.values())


def _json_bytes(value: Any) -> bytes:
    """The one serialization of every bundled JSON file (verify re-serializes and compares)."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _unverified_kid(token: str) -> str | None:
    """The `kid` header of a compact JWS, read (not trusted) to know which key to bundle."""
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    except (ValueError, binascii.Error):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(READ_CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _readme(session_id: str) -> str:
    return f"""signgate audit bundle for session {session_id}  ({FORMAT})

Check it with `signgate audit verify-bundle DIR`, or by hand:

1. manifest.json lists every other file with its sha256 and size; recompute them
   (sha256sum) and make sure no file is missing or unlisted.
2. keys/<key_id>.pub.pem are Ed25519 public keys; key_id = first 16 hex chars of
   sha256(raw 32-byte key). Compare them with the keys signgate publishes: the bundle
   proves its contents were signed by these keys, not that these keys are genuine.
3. entries.json: for each entry,
     bytes      = RFC 8785 JSON of {{seq, session_id, entry_type, idempotency_key,
                                     created_at, body}}
     entry_hash = sha256(bytes.fromhex(prev_hash) + bytes)
     signature_b64 = base64 Ed25519 signature by key_id over bytes.fromhex(entry_hash)
4. chain.json covers every seq from the session's first entry to its last. Each
   record's prev_hash must equal the entry_hash of the record before it, and its
   signature must verify over its entry_hash. Records of other sessions carry only
   these link fields (their contents are not disclosed), so their hash cannot be
   recomputed; the session's own records must equal its entries in entries.json.
5. evidence.json: each seal equals the seal fields of its evidence_sealed entry;
   merkle_root = RFC 9162 Merkle tree hash over the artifacts' sha256 (in listed order);
   stamp_signature_b64 = Ed25519 signature by stamp_key_id over the RFC 8785 JSON of the
   seal without stamp_signature_b64.
6. attestation.jws (if the session was unlocked): a compact JWS (EdDSA) by a bundled
   key, equal to the attestation in the signing_unlocked entry; its ledger_seq and
   ledger_entry_hash name this session's decision entry in entries.json, and its
   evidence_merkle_root is one of the sealed roots. Expiry is not checked (an attestation
   lives minutes; an audit looks at what was issued).
7. media/<sha256> (only if exported with media): each file hashes to its name and is
   one of the sealed artifacts, and every sealed artifact is there.
"""


# --------------------------------------------------------------------------- verify


class _Fail(Exception):
    """A check failed; the message is the detail shown to the auditor."""


def verify_bundle(path: Path) -> BundleReport:
    """Check the bundle at `path` from its own files only; never raises on bad input."""
    checks: list[BundleCheck] = []
    state = _State(path)

    def run(name: str, check: Callable[[], str]) -> None:
        try:
            detail = check()
        except _Fail as err:
            checks.append(BundleCheck(name=name, ok=False, detail=str(err)))
        except (SigngateError, ValidationError, ValueError, TypeError, KeyError, OSError) as err:
            checks.append(BundleCheck(name=name, ok=False, detail=f"{type(err).__name__}: {err}"))
        else:
            checks.append(BundleCheck(name=name, ok=True, detail=detail))

    run("manifest", state.load_manifest)
    if state.manifest is not None:
        for item in state.manifest.files:
            run(f"file {item.path}", partial(state.check_file, item))
        run("unlisted files", state.check_unlisted)
    run("keys", state.load_keys)
    run("entries", state.check_entries)
    run("chain", state.check_chain)
    run("evidence", state.check_evidence)
    run("attestation", state.check_attestation)
    run("media", state.check_media)
    return BundleReport(ok=all(check.ok for check in checks), checks=checks)


class _State:
    """What the checks learn from the bundle, shared between them in order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest: BundleManifest | None = None
        self.keyring = KeyRing()
        self.entries: list[LedgerEntry] | None = None

    # ---------------------------------------------------------------- helpers

    def read(self, name: str) -> bytes:
        target = self.root / name
        if target.is_symlink() or not target.is_file():
            raise _Fail(f"{name} is missing")
        return target.read_bytes()

    def read_json(self, name: str) -> Any:
        data = self.read(name)
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise _Fail(f"{name} is not JSON: {err}") from err
        if _json_bytes(value) != data:
            raise _Fail(f"{name} is not in the bundle's exact JSON form")
        return value

    def need_manifest(self) -> BundleManifest:
        if self.manifest is None:
            raise _Fail("no valid manifest")
        return self.manifest

    def need_entries(self) -> list[LedgerEntry]:
        if self.entries is None:
            raise _Fail(f"{ENTRIES} did not verify")
        return self.entries

    # ---------------------------------------------------------------- checks

    def load_manifest(self) -> str:
        raw = self.read_json(MANIFEST)
        try:
            manifest = BundleManifest.model_validate(raw)
        except ValidationError as err:
            raise _Fail(f"{MANIFEST} does not have the manifest shape: {err}") from err
        if manifest.format != FORMAT:
            raise _Fail(f"{MANIFEST}: unknown format {manifest.format!r}")
        paths = [item.path for item in manifest.files]
        if paths != sorted(set(paths)):
            raise _Fail(f"{MANIFEST}: files are not a sorted list of distinct paths")
        for item in manifest.files:
            if not _ALLOWED_PATH.fullmatch(item.path):
                raise _Fail(f"{MANIFEST}: path {item.path!r} is not a bundle path")
            if not is_sha256_hex(item.sha256) or item.size < 0:
                raise _Fail(f"{MANIFEST}: bad sha256 or size for {item.path}")
        for required in (ENTRIES, CHAIN, EVIDENCE, README):
            if required not in paths:
                raise _Fail(f"{MANIFEST} does not list {required}")
        self.manifest = manifest
        return f"{len(paths)} files listed for session {manifest.session_id}"

    def check_file(self, item: BundleFile) -> str:
        target = self.root / item.path
        if target.is_symlink() or not target.is_file():
            raise _Fail(f"{item.path} is missing")
        actual, size = _file_sha256(target)
        if actual != item.sha256 or size != item.size:
            raise _Fail(f"{item.path}: sha256 {actual} ({size} bytes) does not match {MANIFEST}")
        return item.sha256

    def check_unlisted(self) -> str:
        listed = {item.path for item in self.need_manifest().files} | {MANIFEST}
        present = {
            found.relative_to(self.root).as_posix()
            for found in self.root.rglob("*")
            if not found.is_dir() or found.is_symlink()
        }
        extra = sorted(present - listed)
        if extra:
            raise _Fail(f"files not in the manifest: {', '.join(extra)}")
        return "none"

    def load_keys(self) -> str:
        keys: dict[str, Any] = {}
        for item in self.need_manifest().files:
            if not item.path.startswith(f"{KEYS_DIR}/"):
                continue
            ring = KeyRing.from_pems([self.read(item.path)])
            (key_id,) = ring.key_ids
            if item.path != f"{KEYS_DIR}/{key_id}.pub.pem":
                raise _Fail(f"{item.path} holds key {key_id}, not the one its name says")
            keys[key_id] = ring.get(key_id)
        if not keys:
            raise _Fail("the bundle holds no public keys")
        self.keyring = KeyRing(keys)
        return "key ids " + ", ".join(sorted(keys))

    def check_entries(self) -> str:
        raw = self.read_json(ENTRIES)
        if not isinstance(raw, list) or not raw:
            raise _Fail(f"{ENTRIES} is not a non-empty list")
        session_id = self.need_manifest().session_id
        entries: list[LedgerEntry] = []
        for item in raw:
            if not isinstance(item, dict) or set(item) != _ENTRY_COLUMNS:
                raise _Fail(f"{ENTRIES}: an entry does not have exactly the ledger columns")
            entry = LedgerEntry.model_validate(item)
            where = f"{ENTRIES} seq {entry.seq}"
            if entry.session_id != session_id:
                raise _Fail(f"{where} belongs to session {entry.session_id!r}, not {session_id}")
            if entries and entry.seq <= entries[-1].seq:
                raise _Fail(f"{where} is out of order")
            recomputed = recomputed_entry_hash(entry)
            if recomputed != entry.entry_hash:
                raise _Fail(f"{where}: entry hash does not recompute ({recomputed[:12]}...)")
            if not self._signed(entry.key_id, entry.signature_b64, entry.entry_hash):
                raise _Fail(f"{where}: signature does not verify with key {entry.key_id}")
            entries.append(entry)
        self.entries = entries
        return f"{len(entries)} entries recomputed and signed"

    def check_chain(self) -> str:
        entries = self.need_entries()
        raw = self.read_json(CHAIN)
        if not isinstance(raw, list) or not raw:
            raise _Fail(f"{CHAIN} is not a non-empty list")
        first, last = entries[0].seq, entries[-1].seq
        own = {entry.seq: entry for entry in entries}
        if len(raw) != last - first + 1:
            raise _Fail(f"{CHAIN} does not cover seq {first}..{last}")
        previous: str | None = None
        for offset, link in enumerate(raw):
            seq = first + offset
            if not isinstance(link, dict) or tuple(sorted(link)) != tuple(sorted(_LINK_COLUMNS)):
                raise _Fail(f"{CHAIN} seq {seq}: not a link record")
            if link["seq"] != seq:
                raise _Fail(f"{CHAIN}: expected seq {seq}, found {link['seq']!r}")
            for column in ("prev_hash", "entry_hash"):
                if not isinstance(link[column], str) or not is_sha256_hex(link[column]):
                    raise _Fail(f"{CHAIN} seq {seq}: {column} is not a sha256")
            if previous is not None and link["prev_hash"] != previous:
                raise _Fail(f"{CHAIN} seq {seq}: prev_hash is not seq {seq - 1}'s entry_hash")
            if seq == 1 and link["prev_hash"] != GENESIS_PREV_HASH:
                raise _Fail(f"{CHAIN} seq 1: prev_hash is not the genesis hash")
            if not self._signed(link["key_id"], link["signature_b64"], link["entry_hash"]):
                raise _Fail(f"{CHAIN} seq {seq}: signature does not verify")
            mine = own.get(seq)
            if mine is not None and any(
                link[column] != getattr(mine, column) for column in _LINK_COLUMNS
            ):
                raise _Fail(f"{CHAIN} seq {seq} differs from the session's entry in {ENTRIES}")
            previous = link["entry_hash"]
        foreign = len(raw) - len(own)
        return f"seq {first}..{last} linked and signed ({foreign} other sessions' entries)"

    def check_evidence(self) -> str:
        entries = self.need_entries()
        raw = self.read_json(EVIDENCE)
        sealed = [entry for entry in entries if entry.entry_type == "evidence_sealed"]
        if not isinstance(raw, list) or len(raw) != len(sealed):
            raise _Fail(f"{EVIDENCE} does not hold one seal per evidence_sealed entry")
        roots: list[str] = []
        for item, entry in zip(raw, sealed, strict=True):
            where = f"{EVIDENCE} seal of seq {entry.seq}"
            expected = _seal_of(entry)
            if item != expected:
                raise _Fail(f"{where} differs from the ledger entry")
            record = SealRecord.model_validate(item["seal"])
            if merkle_root([ref.sha256 for ref in record.artifacts]) != record.merkle_root:
                raise _Fail(f"{where}: Merkle root does not recompute")
            if not verify_seal(record, self.keyring):
                raise _Fail(f"{where}: seal stamp does not verify")
            roots.append(record.merkle_root)
        return f"{len(roots)} seals: roots recomputed, stamps verified"

    def check_attestation(self) -> str:
        entries = self.need_entries()
        unlocks = [entry for entry in entries if entry.entry_type == "signing_unlocked"]
        listed = ATTESTATION in {item.path for item in self.need_manifest().files}
        if not unlocks:
            if listed:
                raise _Fail(f"{ATTESTATION} present but no signing_unlocked entry")
            return "session not unlocked: no attestation"
        if not listed:
            raise _Fail(f"signing_unlocked entry present but no {ATTESTATION}")
        unlock = unlocks[-1]
        token = self.read(ATTESTATION).decode("ascii", errors="replace")
        if token != unlock.body.get("attestation"):
            raise _Fail(f"{ATTESTATION} is not the attestation in seq {unlock.seq}")
        try:
            # now=0: an audit looks at what was issued, long after the token expired.
            claims = verify_attestation(token, self.keyring, now=0)
        except AttestationInvalid as err:
            raise _Fail(f"{ATTESTATION}: {err.reason}: {err.message}") from err
        if claims.model_dump(mode="json") != unlock.body.get("claims"):
            raise _Fail(f"{ATTESTATION}: claims differ from seq {unlock.seq}'s claims")
        decision = next((e for e in entries if e.seq == claims.ledger_seq), None)
        if decision is None or decision.entry_hash != claims.ledger_entry_hash:
            raise _Fail(
                f"{ATTESTATION} names ledger seq {claims.ledger_seq}"
                f" ({claims.ledger_entry_hash[:12]}...), which is not in the bundle"
            )
        _check_decision(claims, decision, unlock)
        roots = {e.body.get("merkle_root") for e in entries if e.entry_type == "evidence_sealed"}
        if claims.evidence_merkle_root not in roots:
            raise _Fail(f"{ATTESTATION}: evidence_merkle_root is not a sealed root")
        return f"signed by {unlock.key_id}; names decision seq {decision.seq}"

    def check_media(self) -> str:
        manifest = self.need_manifest()
        media = [item for item in manifest.files if item.path.startswith(f"{MEDIA_DIR}/")]
        if not manifest.include_media:
            if media:
                raise _Fail("media files present in a bundle exported without media")
            return "not included"
        sealed: set[str] = set()
        for entry in self.need_entries():
            if entry.entry_type == "evidence_sealed":
                sealed |= {artifact["sha256"] for artifact in entry.body["artifacts"]}
        names = set()
        for item in media:
            name = item.path.removeprefix(f"{MEDIA_DIR}/")
            actual, _ = _file_sha256(self.root / item.path)
            if actual != name:
                raise _Fail(f"{item.path} hashes to {actual}, not its name")
            if name not in sealed:
                raise _Fail(f"{item.path} is not one of the sealed artifacts")
            names.add(name)
        missing = sorted(sealed - names)
        if missing:
            raise _Fail(f"sealed artifacts missing from media/: {', '.join(missing)}")
        return f"{len(names)} artifacts match their seals"

    def _signed(self, key_id: Any, signature_b64: Any, entry_hash: str) -> bool:
        if not isinstance(key_id, str) or not isinstance(signature_b64, str):
            return False
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            return False
        if base64.b64encode(signature).decode("ascii") != signature_b64:
            return False  # only the canonical spelling of a signature
        return self.keyring.verify(key_id, signature, bytes.fromhex(entry_hash))


def _check_decision(claims: AttestationClaims, decision: LedgerEntry, unlock: LedgerEntry) -> None:
    if decision.entry_type != "decision" or decision.session_id != claims.sid:
        raise _Fail(f"{ATTESTATION}: ledger seq {decision.seq} is not this session's decision")
    if unlock.body.get("decision_seq") != decision.seq or unlock.seq <= decision.seq:
        raise _Fail(f"seq {unlock.seq} does not unlock decision seq {decision.seq}")
    action = decision.body.get("decision", {}).get("action")
    if action != claims.decision.value:
        raise _Fail(f"{ATTESTATION} says {claims.decision.value}, the decision says {action!r}")
