"""Issue 5's end-to-end promise: two settings move signgate to S3 + PostgreSQL, and one
decision can still be proven to an outsider after the media were erased.

The stack is the gateway tests' one (real dev server, worker, gateway over HTTP, moto's S3
server on loopback, the real PostgreSQL server) with `SIGNGATE_EVIDENCE=s3` and
`SIGNGATE_LEDGER=postgres`; the vendor sandbox is the only double.
"""

from __future__ import annotations

import json

import pytest

from signgate.audit_proofs import ProofInvalid, check_proof, prove_inclusion
from signgate.envelope import EvidenceErased
from signgate.erasure import Erasure
from signgate.evidence_s3 import S3EvidenceStore
from signgate.ledger_postgres import PostgresLedger
from signgate.models import Stage
from signgate.signer import KeyRing
from tests.conftest import RunningDevServer
from tests.gateway.conftest import gateway_stack
from tests.gateway.test_direct_uploads import run_direct_upload_session, s3_settings


async def test_s3_and_postgres_unlock_then_erasure_keeps_the_proof(
    dev_server: RunningDevServer,
    moto_s3_url: str,
    pg_schema: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    async with gateway_stack(
        dev_server,
        tmp_path_factory.mktemp("production") / "var",
        **s3_settings(moto_s3_url),
        ledger="postgres",
        ledger_schema=pg_schema,
    ) as gw:
        assert isinstance(gw.deps.ledger, PostgresLedger)
        assert isinstance(gw.deps.store, S3EvidenceStore)
        run = await run_direct_upload_session(gw)
    sid, media, refs, status = run.session_id, run.media, run.refs, run.status
    settings, deps = gw.settings, gw.deps

    # Unlocked, and the decision it names is in the PostgreSQL ledger.
    assert status.stage is Stage.accepted and status.attestation is not None
    assert status.decision_receipt is not None
    decision_seq = status.decision_receipt.seq
    ledger = deps.ledger
    decision = ledger.get(decision_seq)
    assert decision is not None and decision.session_id == sid
    entry_types = [e.entry_type for e in ledger.entries(sid)]
    assert entry_types.index("decision") < entry_types.index("signing_unlocked")
    keyring = KeyRing.from_dir(settings.keys_dir)

    # Erase: the media become unreadable; the ledger and one decision's proof still hold.
    with deps.store.open(refs[0].object_key) as plain:
        assert plain.read() == media[refs[0].kind]
    Erasure(ledger, deps.store.data_keys).erase(sid, by="ops-carol", reason="subject request")
    for ref in refs:
        with pytest.raises(EvidenceErased):
            deps.store.open(ref.object_key)
    assert ledger.verify(keyring).ok
    ledger.checkpoint()
    proof = json.loads(prove_inclusion(ledger, decision_seq).model_dump_json())
    assert "is included" in check_proof(proof, keyring)  # the document and public keys only
    proof["entry"]["body"]["decision"]["action"] = "reject"
    with pytest.raises(ProofInvalid) as refused:
        check_proof(proof, keyring)
    assert refused.value.reason == "entry_hash_mismatch"
