"""Data: sources and download, split lists, the frame store, validation, datasets."""
