"""API.md is the generated reference of the whole public surface, and it is current."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "client_api_reference.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("client_api_reference", SCRIPT)
    assert spec is not None
    assert spec.loader is not None, f"{SCRIPT} is missing"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_md_is_what_the_code_says() -> None:
    generator = _generator()
    written = generator.OUTPUT.read_text()
    if written != generator.render():
        pytest.fail("API.md is stale: run `python scripts/client_api_reference.py --write`")


def test_every_public_method_is_described() -> None:
    text = _generator().render()
    sections = text.split("\n### ")[1:]
    assert len(sections) > 60
    for section in sections:
        heading, _, body = section.partition("\n\n")
        assert body.strip(), f"no description for {heading}"
    for needle in (
        "mkdir(path: str, *, parents: bool = True, exist_ok: bool = True, mode: int | None = None",
        "async upload(path: str, source: UploadSource",
        "create_agent_token(name: str, *, path_prefix: str = '/', read_only: bool = False",
    ):
        assert needle in text, needle
