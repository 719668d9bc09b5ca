"""Loss functions: adversarial objectives and regularisers, VGG16 perceptual, reconstruction.

Import from the submodules (``mri2tau.losses.adversarial``, ``.perceptual``, ``.reconstruction``);
the vector-quantisation commitment loss comes from ``mri2tau.models.blocks.VectorQuantizerEMA``.
"""
