"""Config loading: the shipped configs parse; bad keys and types name their path."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import DEFAULT_CONFIG, AppConfig, load_config
from engine.typed_config import ConfigError, from_mapping, to_mapping

CONFIGS = sorted((DEFAULT_CONFIG.parent).glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, AppConfig)


def test_every_shipped_config_is_checked() -> None:
    assert {p.name for p in CONFIGS} >= {"default.yaml", "paper.yaml", "paper-vllm.yaml",
                                         "vllm.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_build_their_backend(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The factory's own dispatch takes each config's backend (an unknown one raises), with
    its start-time checks; the backend's constructor is replaced, so nothing loads or connects.
    """
    from engine import factory
    from engine.backends import vllm_connect

    engine = load_config(path).engine
    built: list[str] = []

    def built_as(name: str) -> Callable[..., str]:
        def build(*args: object) -> str:
            built.append(name)
            return name
        return build

    monkeypatch.setattr(factory, "HfBackend", built_as("hf"))
    monkeypatch.setattr(vllm_connect, "connect_vllm", built_as("vllm"))
    assert factory.build_backend(engine, lm=None, bridge=None) == engine.backend  # type: ignore[arg-type]
    assert built == [engine.backend]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_name_models_that_resolve(path: Path) -> None:
    """The encoder and LM each config names exist, without a download: the embedded ones and
    the bridge weights they use are in the checkout; hub ones are known names and tags.
    """
    import open_clip

    from engine import embedded
    from engine.config import EMBEDDED_LM, EMBEDDED_VISION
    from engine.language import DTYPES

    engine = load_config(path).engine
    vision, language = engine.vision, engine.language
    assert language.dtype in DTYPES
    if vision.arch == EMBEDDED_VISION:
        assert "vision" in embedded.SOURCES
    else:
        assert vision.arch in open_clip.list_models(), vision.arch
        assert vision.weights is None or vision.weights.startswith("hf-hub:") or (
            vision.weights in open_clip.list_pretrained_tags_by_model(vision.arch))
    if language.model == EMBEDDED_LM:
        assert "language" in embedded.SOURCES
        assert engine.bridge.weights is not None
        assert (Path(engine.bridge.weights) / "bridge.safetensors").is_file()
    else:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", language.model), language.model


def test_default_is_offline_embedded_cpu() -> None:
    config = load_config()
    assert config.engine.language.model.startswith("embedded:")
    assert config.engine.vision.arch.startswith("embedded:")
    assert config.engine.device == "cpu"


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("engine:\n  bridge:\n    prefix_tokenz: 4\n")
    with pytest.raises(ConfigError, match=r"engine\.bridge\.prefix_tokenz"):
        load_config(path)


def test_ill_typed_value_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("engine:\n  bridge:\n    prefix_tokens: four\n")
    with pytest.raises(ConfigError, match=r"engine\.bridge\.prefix_tokens.*expected int"):
        load_config(path)


def test_bad_literal_lists_allowed_values(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("engine:\n  backend: tensorrt\n")
    with pytest.raises(ConfigError, match=r"engine\.backend.*'hf', 'vllm'"):
        load_config(path)


def test_bool_is_not_an_int() -> None:
    from engine.config import BridgeConfig

    with pytest.raises(ConfigError, match="prefix_tokens"):
        from_mapping(BridgeConfig, {"prefix_tokens": True})


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text("store:\n  data_dir: ../state\n")
    assert load_config(path).store.data_dir == str(tmp_path / "state")


def test_round_trip_through_plain_mapping() -> None:
    config = load_config()
    assert from_mapping(AppConfig, to_mapping(config)) == config


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def _leaves(node: object, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every value a plain mapping sets, by its key path (lists are values)."""
    if not isinstance(node, dict):
        return {path: node}
    out: dict[tuple[str, ...], object] = {}
    for key, value in node.items():
        out.update(_leaves(value, (*path, str(key))))
    return out


def test_default_yaml_sets_only_what_differs_from_the_dataclasses() -> None:
    """The shipped recipe lives in the dataclasses: default.yaml repeats none of it."""
    import yaml

    from bot.config import _resolve_relative

    raw = _resolve_relative(yaml.safe_load(DEFAULT_CONFIG.read_text()), DEFAULT_CONFIG.parent)
    defaults = _leaves(to_mapping(AppConfig()))
    repeated = [".".join(p) for p, v in _leaves(raw).items() if defaults.get(p, object()) == v]
    assert not repeated, f"default.yaml repeats the dataclass defaults: {repeated}"


def test_paper_states_its_recipe() -> None:
    """paper.yaml trains and decodes as it says, whatever the shipped defaults become."""
    import dataclasses

    import yaml

    from engine.config import GenerationConfig
    from engine.training.config import TrainConfig

    raw = yaml.safe_load((DEFAULT_CONFIG.parent / "paper.yaml").read_text())
    bookkeeping = {"sources", "out_dir", "feature_cache", "checkpoint_every", "seed",
                   "encoder", "answer_tuning", "retrieval_refit", "description_tuning"}
    recipe = {f.name for f in dataclasses.fields(TrainConfig)} - bookkeeping
    assert recipe <= set(raw["train"]), recipe - set(raw["train"])
    decoding = {f.name for f in dataclasses.fields(GenerationConfig)}
    assert decoding <= set(raw["engine"]["generation"]), decoding - set(raw["engine"]["generation"])
