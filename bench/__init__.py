"""threadlog's benchmark: every figure beside a baseline measured in the same run, on the same machine.

`python -m bench` runs every scenario; `python -m bench append|runs|read|fanout|replay|load` runs some.
Load comes from separate processes (bench/loadgen.py); baselines are bare aiohttp handlers in a separate
process (bench/baseline_server.py) on the same PostgreSQL.
"""
