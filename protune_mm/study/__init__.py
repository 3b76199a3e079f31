"""The transfer study (``transfer``), run by ``tools/transfer_study.py``; its parts:
``variants``, ``models``, ``tasks``, ``loop``, ``checks``, ``report``."""
