"""Temporal 2D->3D keypoint lifting (model.py: the network; app.py: data, metrics, streaming
prediction; family.py: the contract)."""
