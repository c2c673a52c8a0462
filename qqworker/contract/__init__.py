"""What the worker and the watchdog share, and what the outside sees of both: a leaf.

`events` (every log event name), `exitcodes`, `beat` (the pipe heartbeat), `settings` + `rules` (the
configuration table and its checks) and `logs` (the JSON line and its redaction). Nothing here imports
any other module of the project (tests/test_layers.py checks it), so either process, the docs
generator and the tests can load it without pulling in the other side.
"""
