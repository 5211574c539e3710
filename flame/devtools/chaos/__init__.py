"""The chaos harness (`make chaos`, `python -m flame.devtools chaos`): run.py runs it; peers.py is
its cluster, proxy.py the fault-injecting proxy, sending.py the messages, faults.py the faults,
checks.py the verdict and report.py the table."""
