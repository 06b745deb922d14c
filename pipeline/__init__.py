"""Data path: dataset sources -> triplet records -> WebDataset shards -> loaders (DALI or reference) -> Batch.

`pipeline` imports nothing from the rest of this project.
"""
