"""Sign-off: an attestation bound to the pack's manifest, four eyes, and any tampering named."""

from __future__ import annotations

import json
import shutil

import pytest

from cutover.evidence import SIGNATURES_FILE, write_manifest
from cutover.signoff import AlreadySigned, PackTampered, check, sign

from . import verify_worlds

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)


@pytest.fixture
def pack(tmp_path):
    folder = tmp_path / "pack"
    (folder / "tables").mkdir(parents=True)
    (folder / "report.html").write_text("<h1>Verdict: PASSED</h1>")
    (folder / "run.json").write_text(json.dumps({"verdict": "passed"}))
    (folder / "tables" / "t.csv").write_text("a,b\n1,2\n")
    write_manifest(folder)
    return folder


def test_two_different_people_make_a_pack_accepted(pack):
    first = sign(pack, "Ada Controller", "Finance controller")
    state = check(pack)
    assert not state.accepted and state.missing and state.verdict == "passed"
    second = sign(pack, "Bob Auditor", "Internal audit")
    state = check(pack)
    assert state.accepted and [s.name for s in state.signatures] == ["Ada Controller", "Bob Auditor"]
    assert first.manifest_sha256 == second.manifest_sha256 == state.manifest_sha256
    records = [json.loads(line) for line in (pack / SIGNATURES_FILE).read_text().splitlines()]
    assert set(records[0]) == {"name", "role", "signed_utc", "manifest_sha256"}
    assert records[0]["signed_utc"].endswith("Z")


def test_the_same_person_cannot_sign_twice(pack):
    sign(pack, "Ada Controller", "Finance controller")
    with pytest.raises(AlreadySigned) as caught:
        sign(pack, "  ada   CONTROLLER ", "CFO")
    assert caught.value.exit_code == 1
    assert not check(pack).accepted
    assert len((pack / SIGNATURES_FILE).read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda p: (p / "report.html").write_text("<h1>Verdict: PASSED!</h1>"), "report.html was changed"),
        (lambda p: (p / "tables" / "extra.csv").write_text("x\n"), "tables/extra.csv was added"),
        (lambda p: (p / "tables" / "t.csv").unlink(), "tables/t.csv was removed"),
    ],
)
def test_a_changed_added_or_removed_file_refuses_signing_and_check_names_it(pack, tamper, named):
    sign(pack, "Ada Controller", "Finance controller")
    tamper(pack)
    with pytest.raises(PackTampered) as caught:
        sign(pack, "Bob Auditor", "Internal audit")
    assert caught.value.exit_code == 1 and named in str(caught.value)
    state = check(pack)
    assert not state.accepted and any(named in p for p in state.problems)


def test_a_rewritten_manifest_voids_the_signatures_made_before(pack):
    sign(pack, "Ada Controller", "Finance controller")
    (pack / "report.html").write_text("<h1>Verdict: PASSED</h1><p>edited</p>")
    write_manifest(pack)  # someone re-hashed the edited pack
    state = check(pack)
    assert not state.accepted and any(
        "Ada Controller's signature is for another manifest.json" in p for p in state.problems
    )
    with pytest.raises(PackTampered, match="rewritten after Ada Controller signed"):
        sign(pack, "Bob Auditor", "Internal audit")


def test_a_real_evidence_pack_is_signed_and_its_tampering_detected(worlds, tmp_path):
    folder = tmp_path / "pack"
    shutil.copytree(worlds.verified().report_dir, folder)
    sign(folder, "Ada Controller", "Finance controller")
    sign(folder, "Bob Auditor", "Internal audit")
    assert check(folder).accepted
    csv = next(folder.glob("tables/*/*.csv"))
    csv.write_text(csv.read_text().replace("0", "1", 1))
    state = check(folder)
    assert not state.accepted and any(csv.relative_to(folder).as_posix() in p for p in state.problems)
