"""Losses shared across papers: KL terms, perceptual (VGG/LPIPS-style) feature losses."""
