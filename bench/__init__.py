"""Helpers of scripts/bench.py: its environment, the clients it compares, and a process runner."""
