"""Disentangling YAMNet latents: projection, splits, invertible flows, latent transfer."""
