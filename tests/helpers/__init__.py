"""Helpers shared by the test modules: fixture writers and tiny settings (no tests here)."""
