"""Regression tests for the security review: one module per finding, one attack per test."""
