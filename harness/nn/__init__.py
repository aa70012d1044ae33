"""Network blocks shared by several methods, each defined once:

* ``damsm``: DAMSM text encoder (BiLSTM) and image encoders (Inception-v3 trunk, small CNN), ``build_damsm``
* ``damsm_loss``: DAMSM words and sentence losses
* ``conditioning``: GLU, conditioning augmentation (CANet), KL term
* ``item_noise``: random draws inside a network per data item (the same on any number of ranks)
* ``generator_blocks``: upBlock, ResBlock, first stage ``InitStageG``, image head
* ``word_attention``: AttnGAN's word attention; the padding-mask modes (``model.attention_mask``)
* ``discriminators``: stage discriminators (BatchNorm or spectral norm) with conditional/unconditional heads
* ``spectral_norm``: DM-GAN's spectral norm (the original algorithm, u/v buffers) and its original key layout
* ``gan_losses``: discriminator and generator adversarial losses
* ``reference_objective``: the AttnGAN/DM-GAN loss terms on a training ``Step``
* ``init``: the reference weight initialisation
* ``state_dicts``: safe, strict loading of weight files
"""
