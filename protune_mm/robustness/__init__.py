"""Corrupted-input evaluation (ImageNet-C / COCO-C corruptions) of mmdet and mmseg
models: the ``protune_mm.Corrupt`` pipeline step, the evaluation loop over
corruptions and severities, and mPC / rPC."""
from .corruptions import (BENCHMARK, CORRUPTIONS, FAMILIES, SETS, SEVERITIES,
                          check_severities, corrupt_image, family_of, image_seed,
                          resolve_corruptions)
from .report import format_table, plot, summarise, write_json
from .transforms import Corrupt

__all__ = ['BENCHMARK', 'CORRUPTIONS', 'FAMILIES', 'SETS', 'SEVERITIES', 'Corrupt',
           'check_severities', 'corrupt_image', 'family_of', 'image_seed',
           'resolve_corruptions', 'format_table', 'plot', 'summarise', 'write_json']
