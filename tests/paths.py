"""Where the tests find the shared real data: ``../shared/data`` beside the project root."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RSICD = SHARED_DATA / "rsicd"
RSICD_IMAGES = RSICD / "images"
