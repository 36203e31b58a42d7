"""Real data (dataset cards, torchvision loaders), augmentation (DC, DSA), ZCA whitening and the
synthetic-set format."""
