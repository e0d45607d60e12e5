"""Tiny runs of `capret train` and `capret eval` on the real embedded default and real RSICD
images: the loss falls, the bridge and its history are written, the evaluation JSON holds
every metric, caption and rank.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from bot.cli.main import main
from engine.bridge import load_bridge, load_spec
from tests.paths import DEFAULT_CONFIG, PROJECT, RSICD

pytestmark = [pytest.mark.real_weights,
              pytest.mark.skipif(not RSICD.is_dir(), reason="needs the shared RSICD copy")]


def tiny_config(folder: Path, bridge: Path | None = None) -> Path:
    """The default config with absolute paths, a tiny schedule and outputs in ``folder``."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["engine"]["vision"]["weights"] = str(PROJECT / "weights" / "encoder"
                                                / "visual.safetensors")
    config["engine"]["vision"]["text_weights"] = str(PROJECT / "weights" / "encoder"
                                                     / "text.safetensors")
    config["engine"]["bridge"]["weights"] = str(bridge) if bridge else None
    config["engine"]["bridge"]["datastore"] = str(PROJECT / "weights" / "datastore")
    config["store"] = {"data_dir": str(folder / "data")}
    config["train"] = {
        "sources": [{"name": "rsicd", "annotations": str(RSICD / "dataset_rsicd.json"),
                     "images": str(RSICD / "images")}],
        "captions_per_image": "random", "epochs": 6, "batch_size": 8, "learning_rate": 0.01,
        "warmup_steps": 0, "feature_rotations": 1, "checkpoint_every": 2,
        "out_dir": str(folder / "bridge-run"), "feature_cache": str(folder / "cache"),
        "answer_tuning": {"batch_size": 8, "checkpoint_every": 2},
    }
    path = folder / ("eval.yaml" if bridge else "train.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_then_eval_commands(tmp_path: Path) -> None:
    assert main(["--config", str(tiny_config(tmp_path)), "train", "--limit-images", "8",
                 "--max-steps", "5"]) == 0
    run = tmp_path / "bridge-run"
    assert {"bridge.json", "bridge.safetensors"} <= {p.name for p in (run / "bridge").iterdir()}
    assert (run / "loss.png").stat().st_size > 0
    caption_loss = json.loads((run / "history.json").read_text())["caption"]
    assert len(caption_loss) == 5 and caption_loss[-1] < caption_loss[0]

    assert main(["--config", str(tiny_config(tmp_path)), "refit-retrieval", "--limit-images", "8",
                 "--epochs", "3", "--holdout", "2"]) == 0
    refit = json.loads((run / "bridge_refit" / "bridge.json").read_text())
    assert len(refit["retrieval_refit"]["holdout_mr"]) == 3
    assert refit["train"] == json.loads((run / "bridge" / "bridge.json").read_text())["train"]
    prior = load_bridge(run / "bridge_refit", load_spec(run / "bridge_refit")).hubness
    assert prior is not None and prior.image_bank.shape[0] == 8  # every train image

    assert main(["--config", str(tiny_config(tmp_path)), "tune-answers", "--limit-images", "8",
                 "--bridge", str(run / "bridge_refit"), "--max-steps", "3"]) == 0
    tuned = json.loads((run / "bridge_tuned" / "bridge.json").read_text())
    assert len(tuned["answer_tuning"]["loss"]) == 3
    assert tuned["retrieval_refit"] == refit["retrieval_refit"]
    kept = load_bridge(run / "bridge_tuned", load_spec(run / "bridge_tuned")).hubness
    assert kept is not None and torch.equal(kept.query_bank, prior.query_bank)

    report = tmp_path / "val.json"
    refit_config = tiny_config(tmp_path, run / "bridge_tuned")
    assert main(["--config", str(refit_config), "eval", "--limit", "3",
                 "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert {"BLEU-4", "METEOR", "CIDEr", "mR", "scene_accuracy"} <= set(result["metrics"])
    assert len(result["captions"]) == 3 and all(result["captions"].values())
    assert len(result["i2t_ranks"]) == 3 and len(result["t2i_ranks"]) >= 3
    assert all(1 <= rank <= 3 for rank in result["t2i_ranks"])

    searched = tmp_path / "search.json"
    assert main(["--config", str(refit_config), "eval", "--search", "--limit", "3",
                 "--json", str(searched)]) == 0
    search = json.loads(searched.read_text())
    assert not search["captions"] and "BLEU-4" not in search["metrics"]  # nothing generated
    assert search["t2i_ranks"] == result["t2i_ranks"]  # the same search as the full run's
    assert search["metrics"]["mR"] == pytest.approx(result["metrics"]["mR"])
    assert search["metrics"]["mR_odd"] == 100.0  # image 1 alone: a gallery of one

    assert main(["--config", str(refit_config), "eval", "--search", "--as-asked", "--limit", "3",
                 "--json", str(searched)]) == 0
    as_asked = json.loads(searched.read_text())
    assert len(as_asked["t2i_ranks"]) == len(result["t2i_ranks"]) and "mR" in as_asked["metrics"]
