"""A support desk on the test database (SQLite, and PostgreSQL where configured)."""

from __future__ import annotations

import pytest

from crm.db import SessionFactory
from tests.crm.support.harness import Support


@pytest.fixture
def support(session_factory: SessionFactory) -> Support:
    return Support(session_factory)
