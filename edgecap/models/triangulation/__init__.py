"""Multi-view triangulation: an SVD-free, exportable confidence-weighted DLT (dlt.py) and rig geometry (geometry.py)."""
