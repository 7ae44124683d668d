"""Data: named data sets, in-memory batching and augmentation, streamed image folders, and
the batch sources the trainer iterates.

The bottom layer of the engine beside models: it imports only engine.errors, never the
method, training, runs, jobs or the CLI. Modules, from the bottom up: memory (the
in-memory Dataset, batches, augmentation), sources (the BatchSource interface),
imagefolder (ImageNet-style folders, streamed), datasets (load a data set by name).
"""
from engine.data.datasets import (
    CIFAR10_CLASSES,
    DATASETS,
    DEBIAN_FASHION_MNIST,
    FASHION_CLASSES,
    FASHION_FILES,
    SHAPES,
    absolute_data_paths,
    dataset_names,
    dataset_shape,
    load_dataset,
    moved_data,
    shaped_data,
    synthetic_dataset,
)
from engine.data.memory import Dataset, augment_batch, batches

__all__ = ["CIFAR10_CLASSES", "DATASETS", "DEBIAN_FASHION_MNIST", "FASHION_CLASSES", "FASHION_FILES", "SHAPES",
           "Dataset", "absolute_data_paths", "augment_batch", "batches", "dataset_names", "dataset_shape",
           "load_dataset", "moved_data", "shaped_data", "synthetic_dataset"]
