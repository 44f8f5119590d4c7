"""Fixtures for the nlp tests: the default models are trained once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.analysis import Analyzer
from nlp.pipeline import Pipelines


@pytest.fixture(scope="session")
def pipelines() -> Pipelines:
    return Pipelines()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with the default models, trained once (a few seconds)."""
    path = tmp_path_factory.mktemp("models")
    Analyzer(models_dir=path)
    return path


@pytest.fixture(scope="session")
def analyzer(models_dir: Path) -> Analyzer:
    return Analyzer(models_dir=models_dir)
