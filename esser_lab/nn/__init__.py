"""Blocks that two or more chapters use unchanged.

* :mod:`esser_lab.nn.flows`: ActNorm, double affine couplings, shuffles, (conditional) flat flows
  and their NLL (chapters 5–9);
* :mod:`esser_lab.nn.autoencoder`: the dense-latent first-stage autoencoder of the 2020 papers.
* :mod:`esser_lab.nn.transformer`: minGPT with ``n_unmasked`` and a key/value cache (Taming
  Transformers' second stage; GeoFree and ImageBART reuse it).
* :mod:`esser_lab.nn.distributed`: batch statistics and means over every DDP rank (data-dependent
  initialisations and training scalars that must agree across replicas).
* :mod:`esser_lab.nn.attention`: the one attention function over
  ``scaled_dot_product_attention`` (packed or split heads, masks, key/value cache) that the VQGAN,
  the GPT and the UNet call.
* :mod:`esser_lab.nn.unet`: the LDM / Stable Diffusion denoising UNet (``UNetModel``,
  ``UNetConfig``) with the official ``openaimodel`` names (chapter 14 on).
* :mod:`esser_lab.nn.spatial_transformer`: its ``SpatialTransformer`` (self- and cross-attention,
  GEGLU feed-forward) and the small blocks both share (``GroupNorm32``, ``zero_module``).
"""
