"""Config loading: validation with hints, overrides, path resolution, round trip, model registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatools.errors import InputError
from training.config import Key, config_from_dict, dumps_toml, load_config, parse_override
from training.models.registry import ModelSpec, get_spec, model_names, register

from .conftest import write_config


def _messages(excinfo: pytest.ExceptionInfo[InputError]) -> str:
    return "\n".join(p.reason for p in excinfo.value.problems)


def test_misspelled_keys_and_sections_all_reported_with_closest_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[data]\ndataset = "ds"\n[model]\nbase_filter = 8\n[train]\nreducer_patince = 3\nloss = "dise"\n'
        'epochs = "ten"\n[evl]\nsplit = "test"\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as e:
        load_config(cfg)
    text = _messages(e)
    assert "unknown key 'base_filter'; did you mean 'base_filters'?" in text
    assert "unknown key 'reducer_patince'; did you mean 'reducer_patience'?" in text
    assert "did you mean 'dice'?" in text
    assert "[train] epochs = 'ten': expected an integer" in text
    assert "unknown section [evl]; did you mean 'eval'?" in text
    assert all(p.path == str(cfg) for p in e.value.problems)
    assert len(e.value.problems) == 5


def test_key_in_wrong_section_is_pointed_to_its_section(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\ndataset = "ds"\nlearning_rate = 0.1\n', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_config(cfg)
    assert "it belongs in [train]" in _messages(e)


def test_missing_required_dataset_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nepochs = 2\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_config(cfg)
    assert "[data] dataset is required" in _messages(e)
    with pytest.raises(InputError) as e:
        load_config(tmp_path / "nope.toml")
    assert e.value.problems[0].path.endswith("nope.toml")


def test_relative_paths_resolve_against_config_folder_and_overrides_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "configs"
    sub.mkdir()
    cfg = write_config(sub / "c.toml", "../data/ds")
    c = load_config(cfg)
    assert c.dataset_dir == (tmp_path / "data" / "ds").resolve()
    assert c.output_dir == (sub / "run").resolve()
    monkeypatch.chdir(tmp_path)
    c = load_config(cfg, ["train.output_dir=elsewhere", "train.epochs=5", "data.image_size=[64, 128]"])
    assert c.output_dir == (tmp_path / "elsewhere").resolve()
    assert c.train["epochs"] == 5
    assert c.image_size == (64, 128)
    assert c.train["learning_rate"] == 0.01 and isinstance(c.train["learning_rate"], float)


def test_override_parsing() -> None:
    assert parse_override("train.learning_rate=7e-5") == ("train", "learning_rate", 7e-5)
    assert parse_override("data.dataset=build/leather aug") == ("data", "dataset", "build/leather aug")
    assert parse_override("data.cache=true") == ("data", "cache", True)
    assert parse_override("train.metrics=['mean_iou']") == ("train", "metrics", ["mean_iou"])
    with pytest.raises(InputError):
        parse_override("epochs=3")


def test_bad_override_key_is_reported_with_hint(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "ds")
    with pytest.raises(InputError) as e:
        load_config(cfg, ["train.epoch=3"])
    assert "did you mean 'epochs'?" in _messages(e)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "ds", train={"clipvalue": 0.5})
    c = load_config(cfg, ["model.dilation=[2, 2]"])
    saved = tmp_path / "saved" / "config.toml"
    saved.parent.mkdir()
    c.save(saved)
    again = load_config(saved)
    assert again.sections == c.sections
    assert again.train["clipvalue"] == 0.5
    assert again.model["dilation"] == [2, 2]


def test_image_size_not_divisible_lists_sizes_that_work(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "ds", data={"image_size": [500, 512]}, model={"num_layers": 6})
    with pytest.raises(InputError) as e:
        load_config(cfg)
    text = _messages(e)
    assert "multiples of 2^5 = 32" in text and "500 → 480 or 512" in text


def test_unknown_model_lists_valid_names(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "ds", model={"name": "flexunt"})
    with pytest.raises(InputError) as e:
        load_config(cfg)
    text = _messages(e)
    assert "did you mean 'flexunet'?" in text
    assert "flexunet" in text.split("valid names:")[1]
    assert "flexunet" in model_names()


def test_registered_model_declares_its_own_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.models.registry as registry

    monkeypatch.setattr(registry, "_REGISTERED", {})

    def build(config, num_classes):  # pragma: no cover - not built here
        raise AssertionError

    spec = register(
        ModelSpec(
            name="toy_for_test",
            build=build,
            defaults={"width": 3, "mode": Key("a", choices=("a", "b"))},
            extra_keys={"train": {"toy_weight": 0.5}},
            validate=lambda c: [] if c.model["width"] < 10 else ["[model] width too large"],
        )
    )
    assert get_spec("toy_for_test") is spec
    raw = {"data": {"dataset": "ds"}, "model": {"name": "toy_for_test", "width": 4}, "train": {"toy_weight": 1}}
    c = config_from_dict(raw, path=tmp_path / "x.toml", base_dir=tmp_path)
    assert c.model == {"name": "toy_for_test", "width": 4, "mode": "a"}
    assert c.train["toy_weight"] == 1.0
    raw["model"]["base_filters"] = 4
    raw["model"]["mode"] = "c"
    with pytest.raises(InputError) as e:
        config_from_dict(raw, path=tmp_path / "x.toml", base_dir=tmp_path)
    assert "[model] unknown key 'base_filters'" in _messages(e)
    assert "valid: a, b" in _messages(e)
    del raw["model"]["base_filters"], raw["model"]["mode"]
    raw["model"]["width"] = 11
    with pytest.raises(InputError) as e:
        config_from_dict(raw, path=tmp_path / "x.toml", base_dir=tmp_path)
    assert "width too large" in _messages(e)


def test_dumps_toml_writes_valid_toml() -> None:
    import tomllib

    doc = {"a": {"s": 'q"uo\\te ü', "f": 1e-5, "i": 3, "b": False, "l": [1.5, 2.0], "n": None, "t": {"x": 1}}}
    back = tomllib.loads(dumps_toml(doc))
    assert back == {"a": {"s": 'q"uo\\te ü', "f": 1e-5, "i": 3, "b": False, "l": [1.5, 2.0], "t": {"x": 1}}}


def test_shipped_leather_config_loads() -> None:
    cfg = Path(__file__).resolve().parents[2] / "training" / "configs" / "leather.toml"
    c = load_config(cfg)
    # the committed experiment: n 8, no input scaling, the reducer's effective patience (Keras's 10)
    assert c.model["dilation"] == [3, 3] and c.model["num_layers"] == 8 and c.model["input_normalize"] is False
    assert (c.train["reducer_patience"], c.train["batch_size"], c.train["clipvalue"]) == (10, 2, 0.4)
    assert c.dataset_dir == (cfg.parent / "../../build/mvtec-leather/dataset").resolve()


def test_loss_options_validated_with_hints(tmp_path: Path) -> None:
    ok = write_config(
        tmp_path / "ok.toml",
        "ds",
        train={"loss": "focal_dice", "dice_classes": "defects", "class_weights": {"background": 0.5, "cut": 4}},
    )
    c = load_config(ok)
    assert c.train["class_weights"] == {"background": 0.5, "cut": 4.0}
    assert c.train["dice_classes"] == "defects"
    again = tmp_path / "again.toml"
    c.save(again)
    assert load_config(again).train["class_weights"] == {"background": 0.5, "cut": 4.0}
    defaults = load_config(write_config(tmp_path / "d.toml", "ds"))
    assert (defaults.train["dice_classes"], defaults.train["class_weights"]) == ("all", "none")
    assert load_config(ok, ["train.class_weights='balanced'"]).train["class_weights"] == "balanced"
    bad = write_config(
        tmp_path / "bad.toml",
        "ds",
        train={"loss": "focal_dic", "dice_classes": "defect", "class_weights": "balnced"},
    )
    with pytest.raises(InputError) as e:
        load_config(bad)
    text = _messages(e)
    assert "did you mean 'focal_dice'? valid: categorical_crossentropy, dice, focal, ce_dice, focal_dice" in text
    assert "did you mean 'defects'? valid: all, defects" in text
    assert "did you mean 'balanced'? valid: none, balanced; or a {name = float} table" in text
    with pytest.raises(InputError, match=r"'cut': must be ≥ 0\.0"):
        load_config(ok, ["train.class_weights={cut=-1}"])
    with pytest.raises(InputError, match="'cut': expected a number"):
        load_config(ok, ["train.class_weights={cut='x'}"])


def test_jit_compile_and_mixed_precision_are_validated_booleans(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "ds")
    config = load_config(cfg)
    assert config.train["jit_compile"] is False and config.train["mixed_precision"] is False
    config = load_config(cfg, ["train.jit_compile=true", "train.mixed_precision=true"])
    assert config.train["jit_compile"] is True and config.train["mixed_precision"] is True
    with pytest.raises(InputError) as e:
        load_config(cfg, ["train.jit_compile=1", "train.mixed_precision=yes", "train.mixed_precison=true"])
    text = _messages(e)
    assert "[train] jit_compile = 1: expected true or false" in text
    assert "[train] mixed_precision = 'yes': expected true or false" in text
    assert "unknown key 'mixed_precison'; did you mean 'mixed_precision'?" in text
