"""Synthetic data sets in the real COCO 2017 / ADE20K layouts."""
from .synthetic import make_ade20k, make_coco, read_stamp

__all__ = ['make_coco', 'make_ade20k', 'read_stamp']
