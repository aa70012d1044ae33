"""Training: ``pretrain`` (DAMSM and the methods' own pretraining stages, cached), ``engine`` (the GAN loop),
``ema``, ``samples`` (training sample sheets). What evaluation, sampling and building a method share with training
lives below this package: ``harness.core.checkpoint`` (atomic, weights_only checkpoints), ``harness.core.seed``
(reproducible random streams), ``harness.core.distributed`` (torchrun / DDP), ``harness.core.runtime`` (device,
precision, loaders)."""
