"""Computation helpers of the methods: lean frozen ops, depthwise conv."""
from .depthwise import DepthwiseConv2d
from .frozen_ops import disable_frozen_ops, enable_frozen_ops, frozen_ops_enabled

__all__ = ['DepthwiseConv2d', 'enable_frozen_ops', 'disable_frozen_ops',
           'frozen_ops_enabled']
