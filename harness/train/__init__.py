"""Training: ``pretrain`` (DAMSM and the methods' own pretraining stages, cached), ``engine`` (the GAN loop),
``checkpoint`` (atomic, weights_only checkpoints; inference models), ``ema``, ``seed`` (reproducible random
streams), ``samples`` (training sample sheets), ``distributed`` (torchrun / DDP)."""
