"""Helpers shared by the test suites and the soak benchmark: local endpoints and servers."""
