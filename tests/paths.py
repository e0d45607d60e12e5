"""Where the tests find the shared real data: ``../shared/data`` beside the project root."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT / "configs" / "default.yaml"
SEED_GALLERY = PROJECT / "gallery" / "default"
SHARED_DATA = PROJECT.parent / "shared" / "data"
RSICD = SHARED_DATA / "rsicd"
RSICD_IMAGES = RSICD / "images"
