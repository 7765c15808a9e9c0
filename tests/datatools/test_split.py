import json
from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from datatools.dataset import Dataset
from datatools.split import assign_splits
from defectkit.cli import app
from tests.datatools.fakes import make_mvtec

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.frozensets(st.sampled_from("abcde"), max_size=1), min_size=1, max_size=80),
    st.integers(0, 2**31),
)
def test_assign_splits_properties(label_sets, seed):
    """Groups with one defect class each (MVTec-like): every class in >= 3 groups reaches every split."""
    labels = {f"g{i:03d}": s or frozenset({"good"}) for i, s in enumerate(label_sets)}
    fractions = {"train": 0.7, "valid": 0.15, "test": 0.15}
    a = assign_splits(labels, fractions, seed)
    assert a == assign_splits(dict(reversed(labels.items())), fractions, seed)  # order-independent, deterministic
    assert set(a) == set(labels) and set(a.values()) <= {"train", "valid", "test"}
    groups_of = defaultdict(list)
    for g, labs in labels.items():
        for lab in labs:
            groups_of[lab].append(g)
    for lab, gs in groups_of.items():
        if len(gs) >= 3:
            assert {a[g] for g in gs} == {"train", "valid", "test"}, (lab, gs)
    if len(labels) >= 40:
        counts = Counter(a.values())
        assert abs(counts["train"] / len(labels) - 0.7) < 0.15


def test_assign_splits_multiclass_groups_best_effort():
    # a, c and e each sit in exactly three groups that overlap so that no assignment covers all splits for all
    # three (g0 and g4 would both have to take the split g1 and g5 leave free); the split must still be whole.
    labels = {
        "g0": frozenset("abc"),
        "g1": frozenset("bce"),
        "g2": frozenset({"good"}),
        "g3": frozenset("ad"),
        "g4": frozenset("ae"),
        "g5": frozenset("cef"),
        "g6": frozenset({"good"}),
    }
    a = assign_splits(labels, {"train": 0.7, "valid": 0.15, "test": 0.15}, 0)
    assert set(a) == set(labels)
    covered = [lab for lab in "ace" if {a[g] for g, s in labels.items() if lab in s} == {"train", "valid", "test"}]
    assert len(covered) >= 2


def test_split_command_keeps_groups_whole_and_is_seeded(tmp_path):
    src = make_mvtec(tmp_path / "cat", defects=("cut", "fold", "glue"), n_defect=6, n_good=8)
    ds_path = tmp_path / "ds"
    assert run("convert", "mvtec", src, ds_path, "-j", 1).exit_code == 0
    # simulate augmentation before splitting: derived rows share the group of their parent
    ds = Dataset.load(ds_path)
    extra = []
    for r in ds.rows[:10]:
        copy = dict(r, id=r["id"] + "@copy", parent=r["id"])
        extra.append(copy)
    ds.rows = sorted(ds.rows + extra, key=lambda r: r["id"])
    ds.save()
    res = run("split", ds_path, "--train", 0.6, "--valid", 0.2, "--test", 0.2, "--seed", 7)
    assert res.exit_code == 0, res.output
    first = (ds_path / "manifest.jsonl").read_bytes()
    ds = Dataset.load(ds_path)
    split_of_group = defaultdict(set)
    for r in ds.rows:
        split_of_group[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of_group.values())
    for cls in ("cut", "fold", "glue"):
        assert {r["split"] for r in ds.rows if cls in r["classes"]} == {"train", "valid", "test"}
    info = json.loads((ds_path / "dataset.json").read_text())["split"]
    assert (info["train"], info["valid"], info["test"], info["seed"]) == (0.6, 0.2, 0.2, 7)
    assert sum(c["groups"] for c in info["counts"].values()) == 26
    assert run("split", ds_path, "--train", 0.6, "--valid", 0.2, "--test", 0.2, "--seed", 7).exit_code == 0
    assert (ds_path / "manifest.jsonl").read_bytes() == first
    assert run("split", ds_path, "--train", 0.6, "--valid", 0.2, "--test", 0.2, "--seed", 8).exit_code == 0
    assert (ds_path / "manifest.jsonl").read_bytes() != first
    assert run("verify", ds_path).exit_code == 0  # no group in two splits


@pytest.mark.parametrize("args", [("--train", 0.5, "--valid", 0.2, "--test", 0.2), ("--train", 1.5)])
def test_split_rejects_bad_fractions(tmp_path, args):
    src = make_mvtec(tmp_path / "cat")
    assert run("convert", "mvtec", src, tmp_path / "ds", "-j", 1).exit_code == 0
    before = (tmp_path / "ds/manifest.jsonl").read_bytes()
    res = run("split", tmp_path / "ds", *args)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert (tmp_path / "ds/manifest.jsonl").read_bytes() == before
