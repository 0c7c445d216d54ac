"""Support shared by the tests and the benchmarks: emulated network links (netlink, with
its delaying relay) and the load test's lightweight actors (load_actor)."""
