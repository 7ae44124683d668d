"""Foreign models: specs and channel groups (below the method; imports only errors).

spec (a model spec string -> the user's network: torchvision:NAME, timm:NAME,
file.py:factory, package.module:factory), graph (channel groups from Torch-Pruning's
DependencyGraph, checked by a zero-gate probe), costs (exact MACs/params at any kept
channels). engine.gating, in the method layer, puts the gates in.
"""
