"""The command line is quiet and helpful: library logs to a file, a fresh gallery gets seeded."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bot.cli.main import main
from bot.contact_sheet import contact_sheet, sheet_label
from bot.logs import setup_logging
from bot.replies import Hit
from tests.bot.conftest import RSICD
from tests.fake_engine import FakeEngine

SEED = Path(__file__).resolve().parents[2] / "gallery" / "default"


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(name, "")  # remembered as it was, then unset for the test
        monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        hf_logging.enable_default_handler()
        hf_logging.disable_propagation()
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity_warning()


def library_chatter() -> None:
    logging.getLogger().info("Parsing model identifier. Schema: None")  # open_clip, root logger
    logging.getLogger().warning("Model capret initialized partially.")
    logging.getLogger("transformers.modeling_utils").warning("pooler.dense.bias | UNEXPECTED")
    warnings.warn("a library's deprecation", UserWarning, stacklevel=1)
    logging.getLogger("store.schema").info("database schema upgraded")
    logging.getLogger("bot.gallery_builder").warning("seed gallery folder x not found")


def test_library_logs_go_to_the_file_not_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    log = tmp_path / "capret.log"
    assert setup_logging(verbose=False, log_file=log) == log
    library_chatter()
    shown = capsys.readouterr().err
    assert shown.strip() == "WARNING: seed gallery folder x not found"
    kept = log.read_text()
    for line in ("Parsing model identifier", "initialized partially", "UNEXPECTED",
                 "a library's deprecation", "database schema upgraded"):
        assert line in kept


def test_transformers_own_handler_is_rerouted_to_the_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from transformers.utils import logging as hf_logging

    log = tmp_path / "capret.log"
    setup_logging(verbose=False, log_file=log)
    hf_logging.get_logger("transformers.modeling_utils").warning("BertModel LOAD REPORT")
    assert "LOAD REPORT" not in capfd.readouterr().err
    assert "LOAD REPORT" in log.read_text()


def test_verbose_shows_everything(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    assert setup_logging(verbose=True) is None
    library_chatter()
    shown = capsys.readouterr().err
    assert "initialized partially" in shown and "Parsing model identifier" in shown


def _config(tmp_path: Path, seed: Path | None) -> str:
    path = tmp_path / "c.yaml"
    seed_line = f"    seed_folder: {seed}\n" if seed else "    seed_folder: null\n"
    path.write_text(f"store:\n  data_dir: {tmp_path / 'data'}\n  gallery:\n    index: flat\n"
                    + seed_line)
    return str(path)


@pytest.fixture
def gallery_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    """`capret gallery` with its log in tmp_path, the default database, a vector engine."""
    monkeypatch.setenv("CAPRET_LOG_FILE", str(tmp_path / "log.txt"))
    monkeypatch.delenv("CAPRET_DATABASE_URL", raising=False)
    monkeypatch.setattr("bot.cli.gallery._engine", lambda config: FakeEngine())


def test_gallery_search_on_a_fresh_checkout_seeds_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gallery_cli: None,
) -> None:
    config = _config(tmp_path, SEED)
    assert main(["--config", config, "gallery", "search", "an airport", "-k", "3"]) == 0
    first = capsys.readouterr()
    assert "indexing the seed gallery" in first.err and "indexed 40 images" in first.err
    assert [line.split(".")[0].strip() for line in first.out.splitlines()] == ["1", "2", "3"]
    assert main(["--config", config, "gallery", "search", "a beach", "-k", "2"]) == 0
    again = capsys.readouterr()
    assert again.err == "" and len(again.out.splitlines()) == 2


def test_gallery_search_without_images_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gallery_cli: None,
) -> None:
    assert main(["--config", _config(tmp_path, None), "gallery", "search", "x"]) == 1
    assert "capret gallery add FOLDER" in capsys.readouterr().err


def test_contact_sheet_labels_are_plain_ascii(tmp_path: Path) -> None:
    label = sheet_label(2, "São Paulo — harbour → boats", 0.8312)
    assert label == "2. Sao Paulo - harbour ? boats 0.83"
    assert len(sheet_label(1, "x" * 200, 0.5)) <= 40
    hit = Hit(1, "plage — côte", 0.5, RSICD / "00080.jpg", "0" * 64)
    sheet = contact_sheet([hit, hit], tmp_path / "sheet.png", thumb=64)
    assert Image.open(sheet).size == (128, 82)


def test_a_stage_given_another_encoder_takes_its_towers_and_no_datastore(tmp_path: Path) -> None:
    # The configured datastore holds the configured encoder's vectors: a later training stage
    # on a new encoder (make retrain) would otherwise narrow its search on the wrong space.
    from bot.cli.train import with_encoder
    from engine.config import BridgeConfig, EngineConfig

    configured = EngineConfig(bridge=BridgeConfig(datastore="weights/datastore"))
    visual = tmp_path / "visual.safetensors"
    alone = with_encoder(configured, str(visual))
    assert (alone.vision.weights, alone.vision.text_weights) == (str(visual), None)
    assert alone.bridge.datastore is None
    (tmp_path / "text.safetensors").write_bytes(b"")
    assert with_encoder(configured, str(visual)).vision.text_weights == str(
        tmp_path / "text.safetensors")
    assert with_encoder(configured, None) == configured
