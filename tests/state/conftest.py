"""Fixtures for the state tests (helpers live in ``state_helpers``)."""

from state_helpers import holder_factory  # noqa: F401 - re-exported as a fixture
