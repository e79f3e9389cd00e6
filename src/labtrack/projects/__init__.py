"""Projects: run code reproducibly from an MLproject, locally or on a SLURM cluster.

``labtrack run`` reads MLflow's MLproject files (spec), fetches the code
(sources), prepares its Python environment (environments) and runs an entry
point as a tracked run (runner), here or as a SLURM job array (slurm).
"""
