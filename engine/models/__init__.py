"""Models that pfs did not write: parse a model spec, find its channel groups, cost it.

spec (`torchvision:NAME`, `timm:NAME`, `file.py:factory`, `package.module:factory`, or a
sample model's name), graph (channel groups from Torch-Pruning's dependency graph, which
ones can be gated and why not), costs (exact MACs/params at any kept channels from a
table traced once, as ptflops counts the pruned network).

Layer: beside data, below the method (engine.gating puts gates where graph says); it
imports only engine.errors, torch, torchvision/timm and torch_pruning.
"""
