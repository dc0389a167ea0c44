"""Which samples go together: ``provenance.cluster``, ``provenance cluster``, ``POST /v1/cluster`` and
``provenance batch --cluster``, on small models trained here (the estimator itself: test_clusters.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.numpy import load_file, save_file

import provenance
from provenance import Attributor
from provenance.batch import read_records
from provenance.batch.clusters import CLUSTERS_NAME
from provenance.bundle import Bundle
from provenance.cli import main
from provenance.clustering import ClusterError, cluster_batch
from provenance.core.serialization import CONFIG_NAME, WEIGHTS_NAME
from provenance.detectors.reading import Text
from provenance.index import LinkageIndex
from provenance.service import Settings, create_app
from tests.factories import AUTHOR_STYLES, styled_text, synthetic_image

AUTHORS = sorted(AUTHOR_STYLES)


@pytest.fixture(scope="module")
def author_model() -> Attributor:
    """Function words + a linear head on the three styled authors of the factories."""
    g = np.random.default_rng(0)
    texts = [styled_text(a, g) for a in AUTHORS * 12]
    return Attributor("function-words", head="linear", modality="text").fit(texts, AUTHORS * 12)


def _texts(tmp_path: Path, plan: list[str], seed: int = 5) -> list[Path]:
    g = np.random.default_rng(seed)
    paths = []
    for i, author in enumerate(plan):
        p = tmp_path / f"t{i:02d}-{author}.txt"
        p.write_text(styled_text(author, g))
        paths.append(p)
    return paths


PLAN = ["ann", "bob", "ann", "bob", "ann", "bob", "ann", "bob", "cy"]


def _partition(samples: list[dict]) -> dict[str, set[int | None]]:
    """For each author (from the file name), the groups its samples landed in."""
    out: dict[str, set[int | None]] = {}
    for s in samples:
        author = Path(s["sample"]).stem.split("-", 1)[1]
        out.setdefault(author, set()).add(s["group"])
    return out


def test_samples_of_one_source_go_together_and_each_group_is_answered(author_model: Attributor, tmp_path: Path) -> None:
    paths = _texts(tmp_path, PLAN)
    result = provenance.cluster(paths, model=author_model).to_dict()
    assert result["n_samples"] == 9 and result["n_groups"] == 2 and result["min_size"] == 2
    groups = {g["label"]: g for g in result["groups"]}
    assert set(groups) == {"ann", "bob"}
    for author, group in groups.items():
        assert group["size"] == 4 and group["known"] and group["nearest_known"] == author
        assert sorted(group["members"]) == sorted(str(p) for p in paths if p.stem.endswith(author))
        assert group["modality"] == "text" and group["candidates"][0][0] == author
    assert [g["group"] for g in result["groups"]] == [1, 2]  # numbered largest first, ties by first member
    assert result["groups"][0]["members"][0] == str(paths[0])
    # the one sample by cy has no partner
    assert result["ungrouped"] == [{"sample": str(paths[8]), "partners": 0, "note": "no partner found"}]
    partition = _partition(result["samples"])
    assert partition["cy"] == {None} and len(partition["ann"]) == 1 and len(partition["bob"]) == 1
    assert result["calibration"]["text"]["calibrated_on"] in ("held-out", "in-sample")
    json.dumps(result, allow_nan=False)


def test_min_size_leaves_small_groups_ungrouped(author_model: Attributor, tmp_path: Path) -> None:
    paths = _texts(tmp_path, PLAN)
    result = provenance.cluster(paths, model=author_model, min_size=5).to_dict()
    assert result["groups"] == [] and len(result["ungrouped"]) == 9
    assert {u["note"] for u in result["ungrouped"]} == {"in a group of 4, under min_size 5", "no partner found"}
    with pytest.raises(ClusterError, match="min_size"):
        provenance.cluster(paths, model=author_model, min_size=0)


def test_the_clusterer_is_saved_with_the_model_and_old_folders_calibrate_on_the_bank(
    author_model: Attributor, tmp_path: Path
) -> None:
    paths = _texts(tmp_path, PLAN)
    folder = author_model.save_pretrained(tmp_path / "model")
    loaded = Attributor.from_pretrained(folder)
    assert loaded.clusterer_ is not None and loaded.clusterer_.threshold_ == author_model.clusterer_.threshold_
    before = provenance.cluster(paths, model=author_model).to_dict()
    assert provenance.cluster(paths, model=loaded).to_dict() == before

    # a folder saved before grouping existed: no clusterer; grouping calibrates on the bank, and says so
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    config = json.loads((old / CONFIG_NAME).read_text())
    del config["clusterer"]
    (old / CONFIG_NAME).write_text(json.dumps(config))
    arrays = load_file(str(old / WEIGHTS_NAME))
    save_file({k: v for k, v in arrays.items() if not k.startswith("clusterer.")}, str(old / WEIGHTS_NAME))
    old_model = Attributor.from_pretrained(old)
    assert old_model.clusterer_ is None
    result = provenance.cluster(paths, model=old_model).to_dict()
    assert result["calibration"]["text"]["calibrated_on"] == "bank"
    assert any("bank of" in n for n in result["notes"])
    assert {g["label"] for g in result["groups"]} == {"ann", "bob"}


def test_a_tampered_clusterer_is_refused_naming_it(author_model: Attributor, tmp_path: Path) -> None:
    folder = author_model.save_pretrained(tmp_path / "model")
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    config = json.loads((bad / CONFIG_NAME).read_text())
    config["clusterer"]["learned"]["threshold"] = -1.0
    (bad / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"clusterer\.learned\.threshold"):
        Attributor.from_pretrained(bad)
    bad2 = tmp_path / "bad2"
    shutil.copytree(folder, bad2)
    arrays = load_file(str(bad2 / WEIGHTS_NAME))
    arrays["clusterer.scale"] = -np.abs(arrays["clusterer.scale"])
    save_file(arrays, str(bad2 / WEIGHTS_NAME))
    with pytest.raises(ValueError, match=r"clusterer\.scale"):
        Attributor.from_pretrained(bad2)


def test_unreadable_samples_and_other_modalities_are_in_no_group(author_model: Attributor, tmp_path: Path) -> None:
    paths = _texts(tmp_path, PLAN[:4])
    image = tmp_path / "photo.png"
    Image.fromarray(synthetic_image("gauss", np.random.default_rng(0), 64)).save(image)
    missing = tmp_path / "missing.txt"
    result = cluster_batch([*paths, image, missing], author_model).to_dict()
    assert result["n_groups"] == 2
    by_name = {s["sample"]: s for s in result["samples"]}
    assert by_name[str(missing)]["group"] is None and by_name[str(missing)]["error"]
    assert {"sample": str(image), "partners": 0, "note": "no image model to group it"} in result["ungrouped"]
    assert any("could not be read" in n for n in result["notes"])
    with pytest.raises(ClusterError, match="needs a model"):
        cluster_batch(paths, None)  # type: ignore[arg-type]


def test_a_bundle_groups_each_modality_apart(author_model: Attributor, cnn_model: Attributor) -> None:
    g = np.random.default_rng(3)
    images = [synthetic_image(k, g, 64) for k in ["gauss"] * 3 + ["upsampled"] * 3]
    texts = [Text(styled_text(a, g)) for a in ["ann"] * 3]
    result = cluster_batch([*images, *texts], Bundle({"image": cnn_model, "text": author_model})).to_dict()
    for group in result["groups"]:
        modalities = {
            result["samples"][i]["modality"] for i, s in enumerate(result["samples"]) if s["group"] == group["group"]
        }
        assert modalities == {group["modality"]}
    image_groups = [s["group"] for s in result["samples"][:6]]
    assert image_groups[:3] == [image_groups[0]] * 3 and image_groups[3:] == [image_groups[3]] * 3
    assert image_groups[0] != image_groups[3] and None not in image_groups
    assert set(result["calibration"]) == {"image", "text"}


def test_the_cluster_command(author_model: Attributor, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in _texts(tmp_path, PLAN)]
    model = str(author_model.save_pretrained(tmp_path / "model"))
    assert main(["cluster", *paths, "--model", model, "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == provenance.cluster(paths, model=model).to_dict()
    assert main(["cluster", *paths, "--model", model, "-q", "--min-size", "3"]) == 0
    human = capsys.readouterr().out
    assert "2 groups of at least 3 among 9 samples" in human
    assert "group 1: 4 text samples from ann" in human or "group 1: 4 text samples from bob" in human
    assert f"ungrouped: {paths[8]} (no partner found)" in human
    # a missing file is reported and the rest grouped: exit 1
    assert main(["cluster", *paths, str(tmp_path / "nope.txt"), "--model", model, "--json", "-q"]) == 1
    assert json.loads(capsys.readouterr().out)["n_groups"] == 2
    assert main(["cluster", *paths, "--model", model, "--min-size", "0"]) == 2
    assert "--min-size" in capsys.readouterr().err


def test_cluster_without_a_model_is_a_usage_error(tmp_path: Path, no_model_env, capsys) -> None:
    paths = [str(p) for p in _texts(tmp_path, PLAN[:3])]
    assert main(["cluster", *paths]) == 2
    assert "needs a model" in capsys.readouterr().err


def test_cluster_with_an_index_votes_the_groups_references(
    author_model: Attributor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(author_model.save_pretrained(tmp_path / "model"))
    refs = tmp_path / "refs"
    g = np.random.default_rng(9)
    for author in AUTHORS:
        (refs / author).mkdir(parents=True)
        for i in range(6):
            (refs / author / f"{i}.txt").write_text(styled_text(author, g))
    index = tmp_path / "index"
    assert main(["index", "build", str(refs), "-o", str(index), "--model", model, "-q"]) == 0
    capsys.readouterr()
    paths = [str(p) for p in _texts(tmp_path, PLAN)]
    assert main(["cluster", *paths, "--model", model, "--index", str(index), "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    for group in result["groups"]:
        assert group["references"]["label"] == group["label"]
    assert isinstance(LinkageIndex.load(index), LinkageIndex)


def test_the_service_groups_files(author_model: Attributor, tmp_path: Path) -> None:
    client = TestClient(create_app(author_model, Settings()))
    paths = _texts(tmp_path, PLAN)
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
    r = client.post("/v1/cluster", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_groups"] == 2 and [s["sample"] for s in body["samples"]] == [p.name for p in paths]
    assert client.post("/v1/cluster?min_size=0", files=files).status_code == 422
    r = client.post("/v1/cluster?min_size=5", files=files)
    assert r.json()["n_groups"] == 0
    bare = TestClient(create_app(None, Settings()))
    r = bare.post("/v1/cluster", files=files)
    assert r.status_code == 422 and "needs" in r.json()["detail"]


def test_batch_cluster_gives_each_record_its_group(author_model: Attributor, tmp_path: Path, capsys) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for p in _texts(tmp_path, PLAN):
        shutil.move(str(p), inputs / p.name)
    model = str(author_model.save_pretrained(tmp_path / "model"))
    out = tmp_path / "out"
    args = ["batch", str(inputs), "-o", str(out), "--model", model, "--workers", "0", "-q"]
    assert main([*args, "--cluster", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clusters"] == 2
    clusters = json.loads((out / CLUSTERS_NAME).read_text())
    assert clusters["n_groups"] == 2
    records = list(read_records(out))
    assert len(records) == 9 and all("cluster" in r for r in records)
    partition = _partition([{"sample": r["sample"], "group": r["cluster"]} for r in records])
    assert partition["cy"] == {None} and len(partition["ann"]) == 1 and len(partition["bob"]) == 1
    assert partition["ann"] != partition["bob"]
    # a resumed run groups the whole sweep again; one without --cluster leaves no stale groups
    assert main([*args, "--resume", "--cluster"]) == 0
    assert json.loads((out / CLUSTERS_NAME).read_text())["n_samples"] == 9
    assert main([*args, "--resume"]) == 0
    assert not (out / CLUSTERS_NAME).exists() and all("cluster" not in r for r in read_records(out))
    assert main([*args, "--min-size", "3"]) == 2  # --min-size belongs to --cluster
    assert main(["batch", str(inputs), "-o", str(tmp_path / "o2"), "--cluster", "-q"]) == 2  # no model


def test_a_damaged_clusters_file_is_an_error_naming_it(author_model: Attributor, tmp_path: Path) -> None:
    from provenance.batch.output import OutputError

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for p in _texts(tmp_path, PLAN[:4]):
        shutil.move(str(p), inputs / p.name)
    model = str(author_model.save_pretrained(tmp_path / "model"))
    out = tmp_path / "out"
    assert main(["batch", str(inputs), "-o", str(out), "--model", model, "--workers", "0", "-q", "--cluster"]) == 0
    (out / CLUSTERS_NAME).write_text('{"samples": [{"sample": "x", "group": "1; rm -rf"}]}')
    with pytest.raises(OutputError, match=CLUSTERS_NAME):
        list(read_records(out))
