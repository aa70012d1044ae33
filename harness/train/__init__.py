"""Training: ``pretrain`` (DAMSM and the methods' own pretraining stages, cached), ``engine`` (the GAN loop),
``ema``, ``samples`` (training sample sheets). What evaluation, sampling and building a method share with training
lives below this package: ``harness.checkpoint`` (atomic, weights_only checkpoints), ``harness.seed``
(reproducible random streams), ``harness.distributed`` (torchrun / DDP), ``harness.runtime`` (device, precision,
loaders)."""
