"""`python -m flame.devtools fuzz`: a bounded, seeded fuzzer of every route the remote API and the
directory register, against real daemons and a real directory on loopback (`make fuzz`). It holds
the members' real keys (and a member of its own, without a daemon, with real version 2 sessions),
so its requests pass the signature and MAC checks and its envelopes, of both versions, open at
their recipients: the hostile parts reach the parsers behind them. Any 5xx, any ERROR a daemon
logs, or a route left unfuzzed is a failure."""
