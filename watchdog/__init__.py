"""The watchdog: spawns the worker, requires its heartbeat over a pipe, kills and respawns it when it goes
silent, and hands the session on so nothing is lost.

`python -m watchdog run | status | report | pretty` (`watchdog.cli`). The loop is `watchdog.supervisor`
around the pure `watchdog.policy`; this process never loads asyncio (tests/test_layers.py).
"""
