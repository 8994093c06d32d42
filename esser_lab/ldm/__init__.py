"""Latent diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer, CVPR 2022): chapter 14."""
