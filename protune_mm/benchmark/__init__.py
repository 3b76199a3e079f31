"""Cost benchmarks: the whole model per variant (``model`` builds it, ``batch`` feeds
it, ``measure`` times it, ``report`` tabulates), the backbone alone
(``backbone``). Command lines: ``protune_mm/cli/benchmark.py`` and
``benchmark_backbone.py`` (tools/benchmark.py, tools/benchmark_backbone.py)."""
