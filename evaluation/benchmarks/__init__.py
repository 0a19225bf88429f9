"""Benchmarks behind `cascade bench ...`: overhead and prefix reuse, speed, batch throughput,
contract spans, QA support checks and redaction. Their figures go in docs/benchmarks.md."""
