"""Flame's dev tools: the local demo, the benchmark, the chaos harness and the one cluster launcher
they share with the tests (`python -m flame.devtools {demo,bench,chaos}`). They drive daemons from
the outside, through the UI API and the `flame` command, as a person would. The runtime never
imports this package (a test checks)."""
