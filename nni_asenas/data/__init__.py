"""Data shipped inside the package: the NAS-Bench-201 table (``nb201.npz``) and the script that builds it."""
