"""The linkage index: exact and IVF-PQ search, its folder (atomic, checked, memory-mapped), the
backbone it insists on, appending, and `provenance index build|query|add` / `batch --link`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from provenance import Attributor
from provenance.batch import list_inputs, read_records
from provenance.cli import main
from provenance.core.serialization import ModelFormatError
from provenance.detectors import create_extractor
from provenance.index import BackboneMismatchError, LinkageIndex, build_index, query, vote
from provenance.index.files import INDEX_NAME, TABLE_NAME
from tests.factories import files_and_labels


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    """faiss's OpenMP threads spin while they wait: on a busy two-core machine two of them make a
    small build take seconds instead of milliseconds. One thread for these small indexes."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _exact(index: LinkageIndex, refs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force cosine top-k on the standardised vectors: what a flat index must return."""
    R = _unit((refs - index.mean_) / index.scale_)
    Q = _unit((queries - index.mean_) / index.scale_)
    return np.argsort(-(Q @ R.T), axis=1, kind="stable")[:, :k]


def _clustered(n: int, dim: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Vectors around 20 sources (a mixture), as references of many generators would be."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim)) * 3
    which = rng.integers(0, 20, n)
    return (centres[which] + rng.normal(size=(n, dim))).astype(np.float32), [f"src{w}" for w in which]


@pytest.fixture(scope="module")
def refs(stats_model: Attributor, image_dataset: dict[str, Path]) -> dict:
    paths, labels = files_and_labels(image_dataset["train"])
    feats, positions, errors = stats_model.features(paths)
    assert not errors and positions == list(range(len(paths)))
    return {"paths": paths, "labels": labels, "feats": feats}


def test_flat_search_is_exact_and_ids_labels_paths_come_back(refs: dict, stats_model: Attributor) -> None:
    index = LinkageIndex("flat").build(
        refs["feats"], refs["paths"], refs["labels"], refs["paths"], modality="image", backbone=stats_model
    )
    found = index.search(refs["feats"][:10], 5)
    exact = _exact(index, refs["feats"], refs["feats"][:10], 5)
    assert [[refs["paths"].index(n["id"]) for n in row] for row in found] == exact.tolist()
    first = found[0][0]  # a reference is its own nearest neighbour
    assert first["id"] == refs["paths"][0] and first["path"] == refs["paths"][0] and first["label"] == refs["labels"][0]
    assert first["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert vote(found[0])["label"] == refs["labels"][0]
    assert vote([{"label": None, "similarity": 0.9}]) is None


def test_ivfpq_recall_against_the_flat_index() -> None:
    X, labels = _clustered(6000, 48, seed=1)
    Q, _ = _clustered(200, 48, seed=2)
    ids = [str(i) for i in range(len(X))]
    flat = LinkageIndex("flat").build(X, ids, labels, modality="image")
    truth = flat.search_raw(Q, 10)[1]

    def recall(index: LinkageIndex) -> float:
        got = index.search_raw(Q, 10)[1]
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)]))

    refined = LinkageIndex("ivfpq", nprobe=16).build(X, ids, labels, modality="image")
    codes_only = LinkageIndex("ivfpq", nprobe=16, refine=0).build(X, ids, labels, modality="image")
    assert refined.built["nlist"] == 77 and refined.built["m"] == 6 and refined.padded_dim == 48
    assert recall(refined) >= 0.95
    assert 0.2 < recall(codes_only) < recall(refined)  # the codes alone are approximate; re-ranking restores it


def test_save_load_round_trip_memory_mapped(refs: dict, stats_model: Attributor, tmp_path: Path) -> None:
    for kind in ("flat", "ivfpq"):
        index = LinkageIndex(kind).build(
            refs["feats"], refs["paths"], refs["labels"], refs["paths"], modality="image", backbone=stats_model
        )
        folder = index.save_pretrained(tmp_path / kind)
        assert sorted(p.name for p in folder.iterdir()) == [
            "config.json",
            INDEX_NAME,
            TABLE_NAME,
            "weights.safetensors",
        ]
        before = index.search(refs["feats"][:5], 4)
        mapped = LinkageIndex.load(folder, mmap=True)
        read = LinkageIndex.load(folder, mmap=False)
        assert mapped.search(refs["feats"][:5], 4) == before == read.search(refs["feats"][:5], 4)
        assert mapped.mapped and len(mapped) == len(refs["paths"]) and mapped.stored_kind == index.stored_kind
        # the vectors are mapped from the file, not read into memory
        maps = Path("/proc/self/maps").read_text()
        assert str((folder / INDEX_NAME).resolve()) in maps
        with pytest.raises(RuntimeError, match="read-only"):
            mapped.add(refs["feats"][:1], ["x"])


def test_a_damaged_index_is_refused_before_faiss_reads_it(refs: dict, stats_model: Attributor, tmp_path: Path) -> None:
    good = LinkageIndex("flat").build(refs["feats"], refs["paths"], refs["labels"], modality="image")
    source = good.save_pretrained(tmp_path / "good")

    def damaged(name: str, change) -> str:
        folder = tmp_path / name
        shutil.copytree(source, folder)
        change(folder)
        with pytest.raises(ModelFormatError) as exc:
            LinkageIndex.load(folder)
        return str(exc.value)

    def flip(folder: Path) -> None:
        data = bytearray((folder / INDEX_NAME).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / INDEX_NAME).write_bytes(bytes(data))

    def truncate(folder: Path) -> None:
        data = (folder / INDEX_NAME).read_bytes()
        (folder / INDEX_NAME).write_bytes(data[: len(data) // 3])

    def forge(folder: Path) -> None:
        # someone truncates the file and records its new size and hash: the header check still refuses it
        data = (folder / INDEX_NAME).read_bytes()[:-400]
        (folder / INDEX_NAME).write_bytes(data)
        from provenance.index.files import file_digest

        config = json.loads((folder / "config.json").read_text())
        config["files"][INDEX_NAME] = file_digest(folder / INDEX_NAME)
        (folder / "config.json").write_text(json.dumps(config))

    def drop_table(folder: Path) -> None:
        (folder / TABLE_NAME).unlink()

    def wrong_count(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["ntotal"] += 1
        (folder / "config.json").write_text(json.dumps(config))

    assert "SHA-256 differs" in damaged("flipped", flip) and "index.faiss" in damaged("flipped2", flip)
    assert "truncated" in damaged("truncated", truncate)
    assert "do not hold" in damaged("forged", forge)
    assert f"{TABLE_NAME}: missing" in damaged("no-table", drop_table)
    assert "holds 72 vectors" in damaged("count", wrong_count)
    # the command line says the same, exit 2
    assert main(["index", "query", str(tmp_path / "truncated"), refs["paths"][0], "--model", "x"]) == 2


def test_a_model_with_another_backbone_is_refused(
    refs: dict, stats_model: Attributor, image_dataset: dict[str, Path]
) -> None:
    index, _ = build_index(list_inputs([str(image_dataset["train"])]), stats_model)
    # another attributor on the same (weight-free) backbone is welcome: its vectors are the same
    paths, labels = refs["paths"], refs["labels"]
    twin = Attributor("residual-stats").fit(paths[::2], labels[::2])
    assert query(index, list_inputs([paths[0]]), twin, k=1)[0]["neighbours"][0]["id"] == paths[0]
    other = Attributor(create_extractor("residual-stats", spectrum_bins=8)).fit(paths, labels)
    with pytest.raises(BackboneMismatchError, match="not comparable"):
        query(index, list_inputs([paths[0]]), other, k=1)
    text = Attributor("function-words", head="delta", modality="text").fit(
        ["upon the whole " * 9, "on the whole " * 9, "upon it " * 9, "on it " * 9], ["a", "b", "a", "b"]
    )
    with pytest.raises(BackboneMismatchError, match="reads text samples"):
        query(index, list_inputs([paths[0]]), text, k=1)


def test_add_appends_and_keeps_ids_unique(refs: dict, stats_model: Attributor, tmp_path: Path) -> None:
    half = len(refs["paths"]) // 2
    index = LinkageIndex("ivfpq").build(
        refs["feats"][:half], refs["paths"][:half], refs["labels"][:half], modality="image", backbone=stats_model
    )
    index.save_pretrained(tmp_path / "idx")
    loaded = LinkageIndex.load(tmp_path / "idx", mmap=False)
    loaded.add(refs["feats"][half:], refs["paths"][half:], refs["labels"][half:])
    with pytest.raises(ValueError, match="already in the index"):
        loaded.add(refs["feats"][:1], refs["paths"][:1])
    loaded.save_pretrained(tmp_path / "idx")
    again = LinkageIndex.load(tmp_path / "idx")
    assert len(again) == len(refs["paths"])
    last = again.search(refs["feats"][-1:], 1)[0][0]
    assert last["id"] == refs["paths"][-1] and last["label"] == refs["labels"][-1]


def test_command_line_build_query_add_and_batch_link(
    stats_model: Attributor, image_dataset: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = stats_model.save_pretrained(tmp_path / "model")
    train = image_dataset["train"]
    first, rest = tmp_path / "first", tmp_path / "rest"
    for label_dir in sorted(train.iterdir()):
        files = sorted(label_dir.glob("*.png"))
        (first / label_dir.name).mkdir(parents=True)
        (rest / label_dir.name).mkdir(parents=True)
        for f in files[:12]:
            shutil.copy(f, first / label_dir.name / f.name)
        for f in files[12:]:
            shutil.copy(f, rest / label_dir.name / f.name)
    (first / "gauss" / "broken.png").write_bytes(b"not a png")
    index = tmp_path / "index"

    capsys.readouterr()
    assert (
        main(["index", "build", str(first), "-o", str(index), "--model", str(model), "--kind", "ivfpq", "--json"]) == 0
    )
    built = json.loads(capsys.readouterr().out)
    assert built["references"] == 36 and built["kind"] == "ivfpq" and len(built["skipped"]) == 1
    assert "broken.png" in built["skipped"][0]

    probe = sorted((image_dataset["test"] / "upsampled").glob("*.png"))[:2]
    # the model recorded at build time embeds the queries when --model is not given
    assert main(["index", "query", str(index), *map(str, probe), "-k", "5", "--json", "-q"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["sample"] for a in answers] == [str(p) for p in probe]
    assert all(len(a["neighbours"]) == 5 and a["error"] is None for a in answers)
    assert answers[0]["vote"]["label"] == "upsampled"
    sims = [n["similarity"] for n in answers[0]["neighbours"]]
    assert sims == sorted(sims, reverse=True)

    assert main(["index", "add", str(index), str(rest), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["references"] == 72
    assert main(["index", "add", str(index), str(rest)]) == 2  # the same references again
    assert "already in the index" in capsys.readouterr().err
    assert main(["index", "query", str(index), "--text", "some words", "-q"]) == 1  # not an image
    assert main(["index", "build", str(first), "-o", str(tmp_path / "first"), "--model", str(model)]) == 2
    assert "not a model folder" in capsys.readouterr().err

    out = tmp_path / "swept"
    args = ["batch", *map(str, probe), "-o", str(out), "--model", str(model), "--link", str(index), "-k", "3"]
    assert main([*args, "--workers", "0", "-q"]) == 0
    records = {r["sample"]: r for r in read_records(out)}
    capsys.readouterr()
    assert main(["index", "query", str(index), *map(str, probe), "-k", "3", "--json", "-q"]) == 0
    for answer in json.loads(capsys.readouterr().out):
        assert records[answer["sample"]]["links"] == answer["neighbours"]
    other = Attributor(create_extractor("residual-stats", spectrum_bins=8)).fit(*files_and_labels(train))
    other_model = other.save_pretrained(tmp_path / "other")
    args = ["batch", str(probe[0]), "-o", str(tmp_path / "o2"), "--model", str(other_model), "--link", str(index)]
    assert main([*args, "-q"]) == 2
    assert "not comparable" in capsys.readouterr().err
