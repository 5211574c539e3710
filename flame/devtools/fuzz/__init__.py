"""`python -m flame.devtools fuzz`: a bounded, seeded, signed fuzzer of every peer, relay and
directory route against real daemons and a real directory on loopback (`make fuzz`). It holds the
members' real keys, so its requests pass the signature checks and its envelopes open at their
recipients: the hostile parts reach the parsers behind them. Any 5xx, or any ERROR a daemon logs,
is a failure."""
