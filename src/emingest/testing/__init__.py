"""Synthetic EM volumes and loopback replicas of the five archives, shipped like ``zarr.testing``.

Needs the ``testing`` extra (pyftpdlib, moto) for the FTP and S3 replicas.
"""
