"""`provenance batch` with a group field: one record per group (the answer of
`provenance.attribute_source` for its members) beside the per-sample records, under both
engines, with a corrupt member, a group mixing modalities, and resuming."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from provenance.api import Unreadable, attribute_source, load_model
from provenance.batch import list_inputs, read_group_records, read_records
from provenance.batch.output import SUCCESS_NAME, committed_group_parts, committed_parts
from provenance.batch.records import encode_record
from provenance.cli import main
from tests.factories import arrow_style, classic_style, synthetic_image

TEXT_A = "Upon reflection, {} of us think it is upon the people to decide, whilst we wait. "
TEXT_B = "On the whole there are {} reasons, among them the cost, and no more to say on it. "


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture()
def lists(tmp_path: Path) -> Path:
    """A folder with images (one corrupt) and a ``.jsonl`` list naming them, texts and code in groups.

    Groups: ``alpha`` three texts of author A; ``beta`` two JavaScript files in one style and a
    binary file that cannot be read; ``gamma`` two images and a corrupt PNG; ``mixed`` a text and a
    piece of code. Two texts belong to no group.
    """
    folder = tmp_path / "lists"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for i, kind in enumerate(("gauss", "upsampled")):
        Image.fromarray(synthetic_image(kind, rng)).save(folder / f"img{i}.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 8)
    (folder / "one.js").write_text(arrow_style(rng))
    (folder / "two.js").write_text(arrow_style(rng))
    (folder / "binary.js").write_bytes(bytes(range(256)) * 4)
    rows = [
        {"text": TEXT_A.format(1) * 2, "group": "alpha"},
        {"path": "one.js", "group": "beta"},
        {"path": "img0.png", "group": "gamma"},
        {"text": TEXT_B.format(2) * 2},
        {"text": TEXT_A.format(3) * 2, "group": "alpha"},
        {"path": "binary.js", "group": "beta"},
        {"path": "corrupt.png", "group": "gamma"},
        {"text": TEXT_A.format(5) * 2, "group": "mixed"},
        {"code": classic_style(rng), "group": "mixed"},
        {"path": "two.js", "group": "beta"},
        {"path": "img1.png", "group": "gamma"},
        {"text": TEXT_A.format(4) * 2, "group": "alpha"},
        {"text": TEXT_B.format(6) * 2, "id": "no-group"},
    ]
    (folder / "list.jsonl").write_text(_lines(rows))
    return folder


def _expected_group(items: list[Any], model: Any, group: str) -> dict[str, Any]:
    """The group record a sweep must write: the library's answer for the members, plus the sweep's keys."""
    members = [i for i in items if i.group == group]
    samples = [Unreadable(i.sample, i.error) if i.error else i.as_sample() for i in members]
    names = [i.sample for i in members]
    record = attribute_source(samples, model, names=names).to_dict()
    return json.loads(encode_record({"group": group, **record, "members": names}))


def _sweep(args: list[str], out: Path, model: Path, *extra: str) -> int:
    return main(["batch", *args, "-o", str(out), "--model", str(model), "-q", *extra])


def _without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


def test_a_group_field_gives_one_record_per_group_beside_the_samples(
    lists: Path, model_bundle: Path, tmp_path: Path
) -> None:
    listed = str(lists / "list.jsonl")
    out = tmp_path / "out"
    assert _sweep([listed], out, model_bundle, "--workers", "0", "--part-size", "4") == 1  # unreadable members
    assert (out / SUCCESS_NAME).exists()

    # the per-sample records are exactly those of the same list without its group field
    plain = lists / "plain.jsonl"
    rows = [json.loads(line) for line in (lists / "list.jsonl").read_text().splitlines()]
    plain.write_text(_lines([{k: v for k, v in r.items() if k != "group"} for r in rows]))
    reference = tmp_path / "reference"
    assert _sweep([str(plain)], reference, model_bundle, "--workers", "0", "--part-size", "4") == 1
    samples = list(read_records(out))
    assert len(samples) == len(rows) and all("group" not in r for r in samples)
    assert samples == list(read_records(reference))
    assert not list(read_group_records(reference))  # no group field: no group record
    assert not committed_group_parts(reference)

    groups = list(read_group_records(out))
    assert [g["group"] for g in groups] == ["alpha", "beta", "gamma", "mixed"]  # first appearance
    assert len(committed_group_parts(out)) == 1 and committed_group_parts(out)[0].name.startswith("groups-")
    assert set(committed_parts(out)).isdisjoint(committed_group_parts(out))
    model = load_model(model_bundle)
    items = list_inputs([listed])
    by_name = {g["group"]: g for g in groups}
    for name in ("alpha", "beta", "gamma"):
        got = by_name[name]
        assert _without(got, "sha256") == _expected_group(items, model, name), name
        assert got["error"] is None and len(got["per_sample"]) == 3 and len(got["sha256"]) == 64
    alpha, beta, gamma = by_name["alpha"], by_name["beta"], by_name["gamma"]
    assert alpha["modality"] == "text" and alpha["label"] == "A"
    assert alpha["members"] == [i.sample for i in items if i.group == "alpha"]
    # a corrupt member gets its error in per_sample; the group is still answered from the others
    assert beta["modality"] == "code" and beta["label"] is not None and beta["n_samples"] == 2  # the members read
    assert [p["error"] is not None for p in beta["per_sample"]] == [False, True, False]
    assert gamma["modality"] == "image" and gamma["per_sample"][1]["error"].startswith(str(lists / "corrupt.png"))
    # each member's own record in the group is its per-sample record (but for the sweep's keys)
    per_sample = {r["sample"]: r for r in samples}
    for member in alpha["per_sample"]:
        assert member == _without(per_sample[member["sample"]], "sha256")
    # a group mixing modalities is refused with the reason, and the sweep goes on
    mixed = by_name["mixed"]
    assert mixed["label"] is None and mixed["error"].startswith("group 'mixed': ")
    assert "share one modality" in mixed["error"] and "code (sample 2) and text (sample 1)" in mixed["error"]
    assert mixed["members"] == [i.sample for i in items if i.group == "mixed"]
    summary = json.loads((out / "_manifest.json").read_text())["runs"][-1]
    assert summary["groups"] == 4 and summary["group_errors"] == 1


@pytest.mark.slow
def test_the_ray_engine_writes_the_local_engines_group_records(lists: Path, model_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    listed = str(lists / "list.jsonl")
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert _sweep([listed], local, model_bundle, "--workers", "2", "--part-size", "5") == 1
    assert _sweep([listed], ray_out, model_bundle, "--engine", "ray", "--workers", "2", "--format", "parquet") == 1
    assert all(p.suffix == ".parquet" for p in committed_group_parts(ray_out))

    def by(records: Any, key: str) -> dict[str, dict[str, Any]]:
        return {r[key]: r for r in records}

    assert by(read_records(ray_out), "sample") == by(read_records(local), "sample")
    assert by(read_group_records(ray_out), "group") == by(read_group_records(local), "group")
    assert len(list(read_group_records(local))) == 4


def test_resume_computes_only_the_groups_without_a_record(lists: Path, model_bundle: Path, tmp_path: Path) -> None:
    listed = str(lists / "list.jsonl")
    out = tmp_path / "out"
    assert _sweep([listed], out, model_bundle, "--workers", "0") == 1
    first = list(read_group_records(out))

    # a sweep killed after the samples and before the groups: the groups come on --resume, nothing else
    for part in committed_group_parts(out):
        part.unlink()
    (out / SUCCESS_NAME).unlink()
    assert _sweep([listed], out, model_bundle, "--workers", "0", "--resume") == 1
    run = json.loads((out / "_manifest.json").read_text())["runs"][-1]
    assert (run["samples"], run["skipped"], run["groups"]) == (0, 13, 4)
    assert list(read_group_records(out)) == first and (out / SUCCESS_NAME).exists()

    # all done: nothing again (exit 1 still: the folder holds error records, the mixed group's among them)
    assert _sweep([listed], out, model_bundle, "--workers", "0", "--resume") == 1
    run = json.loads((out / "_manifest.json").read_text())["runs"][-1]
    assert (run["samples"], run["groups"], run["groups_skipped"], run["earlier_group_errors"]) == (0, 0, 4, 1)

    # a member whose content changed: its sample and its group only are answered again
    (lists / "two.js").write_text(classic_style(np.random.default_rng(8)))
    assert _sweep([listed], out, model_bundle, "--workers", "0", "--resume") == 1
    run = json.loads((out / "_manifest.json").read_text())["runs"][-1]
    assert (run["samples"], run["groups"], run["groups_skipped"]) == (1, 1, 3)
    again = list(read_group_records(out))
    assert sorted(g["group"] for g in again) == ["alpha", "beta", "beta", "gamma", "mixed"]
    assert len({g["sha256"] for g in again if g["group"] == "beta"}) == 2


def test_the_group_field_by_name_in_jsonl_and_parquet(
    lists: Path, model_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copy(lists / "one.js", tmp_path / "one.js")
    pq.write_table(
        pa.table(
            {
                "path": ["one.js", None, None],
                "text": [None, TEXT_A.format(1) * 2, TEXT_A.format(2) * 2],
                "source": ["site-1", "site-2", "site-2"],
                "team": ["x", "x", None],
            }
        ),
        tmp_path / "list.parquet",
    )
    listed = str(tmp_path / "list.parquet")
    out = tmp_path / "default"
    assert _sweep([listed], out, model_bundle, "--workers", "0") == 0  # "source" is a default name
    assert [(g["group"], g["n_samples"]) for g in read_group_records(out)] == [("site-1", 1), ("site-2", 2)]
    named = tmp_path / "named"
    assert _sweep([listed], named, model_bundle, "--workers", "0", "--group-field", "team") == 1
    (team,) = read_group_records(named)
    assert team["group"] == "x" and "share one modality" in team["error"]  # code and text in one group
    # a field no input has is a typo, said before anything is written
    capsys.readouterr()
    assert _sweep([listed], tmp_path / "typo", model_bundle, "--group-field", "taem") == 2
    assert "--group-field 'taem'" in capsys.readouterr().err and not (tmp_path / "typo").exists()


def test_help_names_the_group_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    text = capsys.readouterr().out
    assert "--group-field" in text and "groups-" in text
