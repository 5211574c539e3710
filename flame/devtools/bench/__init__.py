"""The benchmark (`make bench`, `python -m flame.devtools bench`): run.py runs it; messages.py,
files.py and search.py measure; machine.py gives this machine's own limits and the processes'
CPU and memory."""
