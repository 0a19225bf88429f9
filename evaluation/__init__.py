"""Measurement: the eval harness (`run`, `qa`, `contract`, `replay`, `report`, policy comparison in
`policies` and `metrics`), dataset loaders for the public sets (`datasets`, `cuad`), benchmarks
(`benchmarks/`) and experiments (`experiments/`).

Imports the runtime (orchestrator, routers, agents); the runtime never imports it (tests/test_layers.py).
"""
