"""The worker: a QQ Bot gateway client that reconnects with bounded, jittered backoff and logs every step.

Run it with `python -m qqworker` (alone) or under the watchdog (`python -m watchdog run`, which spawns
`qqworker.child.run_child`). A bot's code sees only the handler API of `qqworker.handlers`
(`DispatchEvent`, `Reply`, `Handler`); what both processes share is `qqworker.contract`; the local
platform for tests and demos is `qqworker.simulator`. The README's Layout section maps the rest.
"""
