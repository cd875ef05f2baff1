"""Image data: sources (embedded digits, torchvision CIFAR, image folders), splits, batching."""

from wpnas.data.batching import AugmentConfig, DeviceBatches
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.data.splits import ImageSplits

__all__ = ["AugmentConfig", "DataConfig", "DeviceBatches", "ImageSplits", "build_image_splits"]
