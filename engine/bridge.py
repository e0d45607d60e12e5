"""The bridge: the only trained part of RS-CapRet.

- image embedding -> k LM input vectors (the image's prefix tokens), and optionally each cell
  of the encoder's pooled feature grid -> one more LM input vector (a shared linear map plus a
  learned position vector per cell), so the LM sees where things are, not just what
  (``PrefixMaps``). A bridge may hold a second set of these maps, tuned on answers to
  questions (``answer_tuning.py``): a request to describe uses the first, any other turn the
  second, so tuning the answers cannot make the descriptions more alike;
- image embedding -> shared retrieval space;
- LM hidden state at [RET] -> shared retrieval space; searches compare the two there, less
  each side's hubness where the bridge holds a ``HubnessPrior`` (``hubness.py``);
- the [RET] token's input row (and its output row when the LM's head is untied);
- a learnable logit scale for the contrastive loss.
Saved as ``bridge.safetensors`` plus ``bridge.json`` (its dims and the identity of the encoder
and LM it was trained on); loading onto other bases fails and says which.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from engine import hubness
from engine.hubness import HubnessPrior

WEIGHTS_FILE = "bridge.safetensors"
META_FILE = "bridge.json"
ANSWER_MAPS = "answer_maps"
HUBNESS = "hubness"
NEIGHBOUR_HINTS = "neighbour_hints"
# Bridges saved before the prefix maps had their own module kept them at the top level.
_EARLIER_NAMES = ("image_to_prefix.", "cell_to_prefix.", "cell_positions")


@dataclass(frozen=True)
class BridgeSpec:
    """Dims of the bridge and the identity of the bases it connects."""

    image_dim: int  # D_img: the encoder's feature size
    lm_dim: int  # D: the LM's hidden size
    prefix_tokens: int  # k
    shared_dim: int  # S
    tied_head: bool  # the LM ties input and output embeddings
    encoder_id: str  # which image encoder (and which of its features) it was trained on
    lm_id: str  # which LM
    # Grid cells after the pooled vector in each image feature (0: a pooled vector only). The
    # feature is then [pooled | cell 1 | ... | cell G], each of width image_dim / (1 + G).
    grid_cells: int = 0

    @property
    def pooled_dim(self) -> int:
        """Width of the pooled vector (and of each grid cell)."""
        return self.image_dim // (1 + self.grid_cells)

    @property
    def tokens_per_image(self) -> int:
        """LM input vectors one image becomes: k from the pooled vector plus one per cell."""
        return self.prefix_tokens + self.grid_cells


@dataclass(frozen=True)
class NeighbourHintSpec:
    """How a bridge's description maps were tuned to read the captions of an image's nearest
    train images in the prompt (``engine/training/description_tuning.py``); the chat must
    show them the same way (``engine.datastore.NeighbourHints``).
    """

    neighbours: int  # nearest train images whose captions vote
    shown: int  # best-voted captions the prompt shows


class BridgeMismatchError(ValueError):
    """Saved bridge weights were trained for other bases or dims."""


class PrefixMaps(nn.Module):
    """Image embedding (pooled vector, then grid cells) -> the LM input vectors it becomes."""

    def __init__(self, spec: BridgeSpec) -> None:
        super().__init__()
        self.spec = spec
        self.image_to_prefix = nn.Linear(spec.pooled_dim, spec.prefix_tokens * spec.lm_dim)
        self.cell_to_prefix = nn.Linear(spec.pooled_dim, spec.lm_dim) if spec.grid_cells else None
        self.cell_positions = (nn.Parameter(torch.randn(spec.grid_cells, spec.lm_dim) * 0.02)
                               if spec.grid_cells else None)

    def forward(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D_img) -> (N, k + G, D)."""
        n, spec = image_embeddings.shape[0], self.spec
        pooled = self.image_to_prefix(image_embeddings[:, :spec.pooled_dim])
        pooled = pooled.view(n, spec.prefix_tokens, spec.lm_dim)
        if self.cell_to_prefix is None or self.cell_positions is None:
            return pooled
        cells = image_embeddings[:, spec.pooled_dim:].reshape(n, spec.grid_cells,
                                                               spec.pooled_dim)
        return torch.cat([pooled, self.cell_to_prefix(cells) + self.cell_positions], dim=1)


class Bridge(nn.Module):
    """Trainable layers between encoder, LM and the retrieval space."""

    def __init__(self, spec: BridgeSpec, logit_scale_init: float = 2.6592) -> None:
        super().__init__()
        self.spec = spec
        if spec.image_dim % (1 + spec.grid_cells):
            raise ValueError(f"image_dim {spec.image_dim} does not split into a pooled vector "
                             f"and {spec.grid_cells} equal grid cells")
        self.describe_maps = PrefixMaps(spec)
        self.answer_maps: PrefixMaps | None = None  # see ``add_answer_maps``
        self.image_to_shared = nn.Linear(spec.pooled_dim, spec.shared_dim)
        self.ret_to_shared = nn.Linear(spec.lm_dim, spec.shared_dim)
        self.ret_embedding = nn.Parameter(torch.randn(spec.lm_dim) * 0.02)
        # With a tied head the [RET] output row is the input row, as for every other token.
        self.ret_output = None if spec.tied_head else nn.Parameter(torch.randn(spec.lm_dim) * 0.02)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        self.hubness: HubnessPrior | None = None  # set by the retrieval refit
        self.neighbour_hints: NeighbourHintSpec | None = None  # set by description tuning

    @property
    def ret_output_row(self) -> torch.Tensor:
        return self.ret_embedding if self.ret_output is None else self.ret_output

    def prefix(self, image_embeddings: torch.Tensor,
               answering: bool | torch.Tensor = False) -> torch.Tensor:
        """(N, D_img) -> (N, k + G, D): the vectors that stand for each image in the prompt.

        ``answering`` (one flag, or one per image): the prompt asks something other than a
        description, so the answer maps make the vectors where the bridge has them.
        """
        if self.answer_maps is None or answering is False:
            return self.describe_maps(image_embeddings)
        if answering is True:
            return self.answer_maps(image_embeddings)
        assert isinstance(answering, torch.Tensor)
        return torch.where(answering.view(-1, 1, 1), self.answer_maps(image_embeddings),
                           self.describe_maps(image_embeddings))

    def add_answer_maps(self) -> PrefixMaps:
        """Give the bridge answer maps, starting as a copy of the description maps."""
        self.answer_maps = copy.deepcopy(self.describe_maps)
        return self.answer_maps

    def image_vectors(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D_img) -> (N, S), L2-normalised: gallery vectors (from the pooled vector)."""
        return F.normalize(self.image_to_shared(self._pooled(image_embeddings)), dim=-1)

    def _pooled(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        return image_embeddings[:, :self.spec.pooled_dim]

    def query_vectors(self, ret_hidden: torch.Tensor) -> torch.Tensor:
        """(N, D) [RET] hidden states -> (N, S), L2-normalised: query vectors."""
        return F.normalize(self.ret_to_shared(ret_hidden), dim=-1)

    @property
    def search_dim(self) -> int:
        """Width of search vectors: the shared space plus the coordinates carrying hubness."""
        return self.spec.shared_dim + hubness.EXTRA_DIMS

    def gallery_rows(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D_img) -> (N, search_dim), normalised: what a gallery stores for each image."""
        keys = self.image_vectors(image_embeddings)
        offsets = (torch.zeros(len(keys), device=keys.device) if self.hubness is None
                   else self.hubness.image_offsets(keys))
        return hubness.gallery_rows(keys, offsets)

    def text_queries(self, ret_hidden: torch.Tensor) -> torch.Tensor:
        """(N, D) [RET] hidden states -> (N, search_dim), normalised: a search by words."""
        return self.vector_queries(self.query_vectors(ret_hidden))

    def vector_queries(self, queries: torch.Tensor) -> torch.Tensor:
        """(N, S) normalised query vectors -> (N, search_dim): each with its hubness."""
        offsets = (torch.zeros(len(queries), device=queries.device) if self.hubness is None
                   else self.hubness.query_offsets(queries))
        return hubness.search_queries(queries, offsets)

    def image_queries(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D_img) -> (N, search_dim), normalised: a search by example ("more like
        this"); the example's own hubness would shift every score alike, so none is taken.
        """
        keys = self.image_vectors(image_embeddings)
        return hubness.search_queries(keys, torch.zeros(len(keys), device=keys.device))

    def init_ret_rows(self, row: torch.Tensor) -> None:
        """Start [RET] from an existing token's row (a better start than noise)."""
        with torch.no_grad():
            self.ret_embedding.copy_(row)
            if self.ret_output is not None:
                self.ret_output.copy_(row)

    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write weights and the spec; ``extra`` (e.g. training config) goes into the JSON."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        meta = {"spec": asdict(self.spec), "logit_scale": float(self.logit_scale.detach()),
                **(extra or {})}
        meta.pop(NEIGHBOUR_HINTS, None)  # the bridge's own, not an earlier stage's record
        if self.neighbour_hints is not None:
            meta[NEIGHBOUR_HINTS] = asdict(self.neighbour_hints)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))


def load_spec(folder: str | Path) -> BridgeSpec:
    """The spec recorded beside saved bridge weights."""
    meta = json.loads((Path(folder) / META_FILE).read_text())
    return BridgeSpec(**meta["spec"])


def load_bridge(folder: str | Path, expected: BridgeSpec) -> Bridge:
    """Load saved weights, refusing ones trained for other bases or dims (bit-exact load)."""
    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {folder}")
    saved = load_spec(folder)
    differences = [
        f"{name}: saved {getattr(saved, name)!r}, this engine {getattr(expected, name)!r}"
        for name in asdict(expected) if getattr(saved, name) != getattr(expected, name)
    ]
    if differences:
        raise BridgeMismatchError(
            f"bridge weights in {folder} do not fit this encoder/LM: " + "; ".join(differences)
        )
    state = _current_names(load_file(str(folder / WEIGHTS_FILE)))
    bridge = Bridge(saved)
    if any(name.startswith(f"{ANSWER_MAPS}.") for name in state):
        bridge.add_answer_maps()
    if f"{HUBNESS}.beta" in state:
        bridge.hubness = HubnessPrior.empty(len(state[f"{HUBNESS}.query_bank"]),
                                            len(state[f"{HUBNESS}.image_bank"]),
                                            saved.shared_dim)
    bridge.load_state_dict(state)
    hints = json.loads((folder / META_FILE).read_text()).get(NEIGHBOUR_HINTS)
    bridge.neighbour_hints = None if hints is None else NeighbourHintSpec(**hints)
    return bridge


def _current_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Saved weights under today's names (the prefix maps moved into ``describe_maps``)."""
    return {f"describe_maps.{name}" if name.startswith(_EARLIER_NAMES) else name: tensor
            for name, tensor in state.items()}
