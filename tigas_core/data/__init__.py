"""Datasets with generator labels, leak-free splits and shortcut-removing augmentation."""
from tigas_core.data.augment import LEVELS, AugmentSpec, get_level, jpeg_reencode, native_view, recolour
from tigas_core.data.dataset import BalancedSampler, ImageDataset
from tigas_core.data.records import FAKE_LABEL, REAL, REAL_LABEL, ImageRecord, load_records, read_csv_index, scan_folder
from tigas_core.data.splits import SPLITS, describe_split, split_records

__all__ = [
    "LEVELS", "AugmentSpec", "get_level", "jpeg_reencode", "native_view", "recolour",
    "BalancedSampler", "ImageDataset",
    "FAKE_LABEL", "REAL", "REAL_LABEL", "ImageRecord", "load_records", "read_csv_index", "scan_folder",
    "SPLITS", "describe_split", "split_records",
]
