"""The dataset config inside mmdet's dataset wrappers."""


def innermost_dataset(dataset):
    """The dataset config that ``dataset`` wraps (``RepeatDataset``, ``ClassBalancedDataset``
    and other wrappers keep it under ``dataset``), or ``dataset`` itself; the same mapping object,
    so that a caller can edit it in place."""
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def train_dataset(cfg) -> dict:
    """The innermost training dataset config of a Runner config; ``{}`` when it has none."""
    return innermost_dataset((cfg.get('train_dataloader') or {}).get('dataset') or {})
