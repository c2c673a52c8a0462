"""The clients the benchmark runs as processes (`python -m benchmark.clients.NAME`, scripts/ on
PYTHONPATH): the worker's no-op handler, bare websockets and aiohttp loops, and qq-botpy."""
