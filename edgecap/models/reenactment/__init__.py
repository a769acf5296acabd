"""Latent-pose head reenactment (Burkov et al., CVPR 2020): identity and pose encoders and an AdaIN generator."""
