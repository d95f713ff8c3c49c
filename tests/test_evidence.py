"""The evidence pack `cutover verify` writes: complete, hashed, readable by independent readers,
self-contained; and the runner's refusals (bad input before anything runs)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cutover.config import ConfigError
from cutover.errors import InputError
from cutover.evidence import MANIFEST_FILE, file_records
from cutover.journal import Journal
from cutover.verification import run_verification

from . import verify_worlds
from .verify_worlds import CUTOVER_DATE, ENV

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_pack_holds_every_file_and_a_manifest_of_their_hashes(worlds):
    folder = worlds.verified().report_dir
    for name in ("cucumber.json", "junit.xml", "report.html", "run.json", "results.json", MANIFEST_FILE):
        assert (folder / name).is_file(), name
    assert (folder / "snapshots" / "before-manifest.json").is_file()
    assert (folder / "snapshots" / "after-manifest.json").is_file()
    assert (folder / "journal" / "journal.jsonl").is_file() and (folder / "journal" / "head.json").is_file()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    assert set(listed) == on_disk
    for path, record in listed.items():
        assert record["sha256"] == _sha(folder / path) and record["bytes"] == (folder / path).stat().st_size


def test_cucumber_json_and_junit_xml_parse_with_independent_readers(worlds):
    clean = worlds.verified().report_dir
    features = json.loads((clean / "cucumber.json").read_text())
    scenarios = [e for f in features for e in f["elements"]]
    assert len(scenarios) == 10
    assert {s["result"]["status"] for e in scenarios for s in e["steps"]} == {"passed"}
    suite = ET.parse(clean / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("10", "0", "0")

    failed = worlds.verified("invoices-map-left-running").report_dir
    messages = [f.get("message") or "" for f in ET.parse(failed / "junit.xml").getroot().iter("failure")]
    assert len(messages) == 4 and any("voucher CIV-" in m for m in messages)
    assert not any("assert False" in m for m in messages)
    errors = [
        s["result"].get("error_message", "")
        for f in json.loads((failed / "cucumber.json").read_text())
        for e in f["elements"]
        for s in e["steps"]
        if s["result"]["status"] == "failed"
    ]
    assert any("customer " in m and "voucher" in m for m in errors)


def test_a_not_verified_scenario_is_never_a_pass_for_any_reader(worlds):
    folder = worlds.verified(blind_verify=True).report_dir
    failures = [f.get("message") or "" for f in ET.parse(folder / "junit.xml").getroot().iter("failure")]
    assert len(failures) == 1 and failures[0].startswith("NOT VERIFIED: ")
    statuses = [
        s["result"]["status"]
        for f in json.loads((folder / "cucumber.json").read_text())
        for e in f["elements"]
        if e["name"].startswith("The dual-write maps")
        for s in e["steps"]
    ]
    assert "failed" in statuses and "skipped" not in statuses
    run = json.loads((folder / "run.json").read_text())
    assert run["verdict"] == "incomplete" and run["counts"]["not verified"] == 1 and run["exit_code"] == 1
    assert "INCOMPLETE" in (folder / "report.html").read_text()


def test_report_html_is_self_contained_and_opens_with_the_verdict(worlds):
    result = worlds.verified("invoices-map-left-running")
    page = (result.report_dir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert not re.search(r"https?://", page), re.findall(r"https?://\S{0,40}", page)[:3]
    assert not re.search(r"@import|url\(\s*['\"]?(?!#)", page)  # only in-page references (clip paths)
    assert page.index("Verdict: FAILED") < page.index("Headline figures") < page.index("<section")
    assert page.count("<svg") == 4  # AR and GL, before/after and movement
    assert "CIV-" in page and "130100" in page  # the mismatch tables and the GL chart's accounts
    head = json.loads((result.report_dir / "journal" / "head.json").read_text())
    assert head["chain_ok"] and head["sha256"] in page
    assert "step.attested" in page and "rehearsal" in page  # who attested what


def test_mismatch_tables_are_csv_files_beside_the_report(worlds):
    folder = worlds.verified("invoices-map-left-running").report_dir
    (path,) = folder.glob("tables/*/ar_new_vouchers.csv")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == 20 and all(r["Voucher"].startswith("CIV-") for r in rows)
    assert all(re.fullmatch(r"-?\d+\.\d+", r["AmountCur"]) for r in rows)  # exact decimals, as text


def test_run_json_binds_the_inputs_and_the_features_as_run(worlds):
    world = worlds.world()
    folder = worlds.verified().report_dir
    run = json.loads((folder / "run.json").read_text())
    assert run["tool_version"] and run["profile"]["name"] == ENV and run["profile"]["kind"] == "rehearsal"
    assert run["pinned_organization_id"] and run["organization_id"] == run["pinned_organization_id"]
    assert run["source_sha256"] == _sha(world.extract) and run["mapping_sha256"] is None
    assert run["cutover_date"] == CUTOVER_DATE
    with Journal.open(world.workspace, create=False) as journal:
        head = journal.head()
    assert (run["journal_head"]["seq"], run["journal_head"]["sha256"]) == (head.seq, head.hash)
    features = {f["path"]: f for f in run["features"]}
    assert "features/shipped/balances/accounts_receivable.feature" in features
    assert "features/shipped/scope.toml" in features
    shipped = Path(__file__).resolve().parent.parent / "features" / "balances" / "accounts_receivable.feature"
    assert features["features/shipped/balances/accounts_receivable.feature"]["sha256"] == _sha(shipped)


def test_a_non_empty_report_folder_is_refused_before_anything_runs(worlds, tmp_path):
    world = worlds.world()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.html").write_text("an earlier pack")
    with pytest.raises(InputError) as caught:
        run_verification(world.workspace, ENV, world.extract, report_dir=tmp_path / "old")
    assert caught.value.exit_code == 2 and "not empty" in str(caught.value)
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["report.html"]


def test_an_unknown_profile_or_a_missing_extract_is_bad_input(worlds, tmp_path):
    world = worlds.world()
    with pytest.raises(ConfigError):
        run_verification(world.workspace, "nosuch", world.extract, report_dir=tmp_path / "a")
    with pytest.raises(InputError) as caught:
        run_verification(world.workspace, ENV, tmp_path / "missing.csv", report_dir=tmp_path / "b")
    assert caught.value.exit_code == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_file_records_skip_the_manifest_and_the_signatures(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / MANIFEST_FILE).write_text("{}")
    (tmp_path / "signatures.jsonl").write_text("")
    assert [r["path"] for r in file_records(tmp_path)] == ["a.txt"]
