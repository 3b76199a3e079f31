"""Cost benchmarks: the whole model per variant (``model``), the backbone alone
(``backbone``). Command lines: tools/benchmark.py, tools/benchmark_backbone.py."""
