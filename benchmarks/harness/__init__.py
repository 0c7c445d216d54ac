"""What every benchmark shares: running the service (launch), describing the machine
(machine), reading metrics records (records), printing tables (table), drawing figures
(plots), the SB3 reference trainer (sb3) and writing results with their provenance
(results). Nothing here imports torch at import time, so `--help` stays fast."""
