"""The slurm backend: a step is a Slurm batch job (sbatch), watched with scontrol."""
