"""The benchmark behind `python scripts/bench.py`: `benchmark.cli.main(args)` runs it.

One module per job: `plan` (what a run measures and with which counts), `throughput`, `recovery`,
`netrecovery` + `botpy_netrecovery` (over a real link), `idle` (the supervisors at idle), `start_methods`,
`profile`, `table` (the README's table and `results.json`, the last full run it is rendered from), `env`
(the bench's own venv with the peers). `clients/` holds the processes it measures against each other.
Kept free of imports: the clients import it from the bench venv and the framework venvs.
"""
