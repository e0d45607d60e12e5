"""`capret doctor`'s checks: each takes the app config and returns (ready, one-line detail)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.config import AppConfig
from bot.environment import DATABASE_URL_ENV, secret
from engine import embedded
from engine.config import EMBEDDED_LM, EMBEDDED_VISION
from store import SchemaTooNewError, database_url
from store.db import Database
from store.schema import check_schema, head_revision

Check = Callable[[AppConfig], tuple[bool, str]]


def check_weights(config: AppConfig) -> tuple[bool, str]:
    """The embedded default's weights are converted (hub models are not checked here)."""
    uses_embedded = EMBEDDED_LM in config.engine.language.model or (
        config.engine.vision.arch == EMBEDDED_VISION
    )
    if not uses_embedded:
        return True, f"hub models {config.engine.language.model}, {config.engine.vision.arch}"
    missing = [role for role in embedded.SOURCES if not _cached(role)]
    if missing:
        return False, f"not converted yet: {', '.join(missing)} (run `capret models prepare`)"
    return True, f"embedded weights converted in {embedded.cache_dir()}"


def check_bridge(config: AppConfig) -> tuple[bool, str]:
    """The configured trained bridge weights exist."""
    weights = config.engine.bridge.weights
    if weights is None:
        return False, "no trained bridge weights configured (engine.bridge.weights): untrained"
    present = (Path(weights) / "bridge.safetensors").is_file()
    return present, f"{weights}" if present else f"{weights}/bridge.safetensors not found"


def check_gpu(config: AppConfig) -> tuple[bool, str]:
    """A CUDA device, needed only when the config asks for one."""
    import torch

    if torch.cuda.is_available():
        return True, f"CUDA: {torch.cuda.get_device_name(0)}"
    needs_gpu = config.engine.device == "cuda"
    return not needs_gpu, "no CUDA device" + (" but the config asks for cuda" if needs_gpu else
                                                " (CPU is fine for the embedded default)")


def check_vllm(config: AppConfig) -> tuple[bool, str]:
    """Both vLLM servers answer, when the config uses the vllm backend."""
    if config.engine.backend != "vllm":
        return True, "not used (backend: hf)"
    from engine.backends.vllm_connect import probe_servers

    return probe_servers(config.engine.vllm)


def _cached(role: str) -> bool:
    """One embedded source (text tower, LM, vision trunk) is converted in the cache."""
    if role == "text":
        return embedded.source_path("text").is_file()
    folder = {"language": "smollm2-135m-instruct", "vision": "efficientnet-lite0"}[role]
    return (embedded.cache_dir() / folder / "source.json").is_file()


def check_database(config: AppConfig) -> tuple[bool, str]:
    """The database is reachable and its schema current."""
    url = database_url(config.store, secret(DATABASE_URL_ENV))
    shown = make_url(url).render_as_string(hide_password=True)
    db = Database(url, config.store.busy_timeout_s)
    try:
        state = check_schema(db)
    except SchemaTooNewError as exc:
        return False, str(exc)
    finally:
        db.dispose()
    if state == "current":
        return True, f"{shown} (schema {head_revision()})"
    auto = " (the app upgrades it on start)" if config.store.auto_upgrade else ""
    return config.store.auto_upgrade, f"{shown}: schema behind, run `capret db upgrade`{auto}"


def check_gallery(config: AppConfig) -> tuple[bool, str]:
    """The gallery has images, or a seed folder to index on first start."""
    from store import open_store

    store = open_store(config.store, secret(DATABASE_URL_ENV), sweep=False)
    try:
        stats = store.gallery.stats()
    finally:
        store.close()
    seed = config.store.gallery.seed_folder
    if stats.count:
        return True, (f"{stats.count} images ({stats.index_kind}, vectors from bridge "
                      f"{stats.bridge_id})")
    if seed and Path(seed).is_dir():
        return True, f"empty; {seed} is indexed on first start"
    return False, "empty and no seed folder: run `capret gallery add PATH`"


CHECKS: list[tuple[str, Check]] = [
    ("weights", check_weights),
    ("bridge", check_bridge),
    ("gpu", check_gpu),
    ("vllm", check_vllm),
    ("database", check_database),
    ("gallery", check_gallery),
]
