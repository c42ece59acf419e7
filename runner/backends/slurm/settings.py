"""The slurm backend's settings (runner/backends/settings.py says where they are given)."""
from __future__ import annotations

from mlproject.runner.backends.settings import Setting

SETTINGS: dict[str, Setting] = {
    "partition": Setting(str, None, "`--partition` (one, or several comma-separated); default: "
                         "the cluster's default partition"),
    "account": Setting(str, None, "`--account` to charge; default: the user's default account"),
    "qos": Setting(str, None, "`--qos`; default: the account's default QOS"),
    "directives": Setting(list, [], "more sbatch options, each one `#SBATCH` line of the script "
                          "(e.g. [\"--constraint=a100\", \"--exclusive\"])"),
    "bin": Setting(str, None, "the directory of Slurm's commands (sbatch, scontrol, squeue, "
                   "sacct, scancel); default: found on PATH"),
    "python": Setting(str, None, "the Python that runs the mlproject worker on the nodes (it must "
                      "import mlproject; the filesystem is shared); default: the interpreter "
                      "mlproject runs in"),
    "export_env": Setting(bool, True, "the job gets the environment sbatch runs in "
                          "(--export=ALL, Slurm's default); false: only the step's variables and "
                          "Slurm's own SLURM_*"),
    "time_margin": Setting(float, 300.0, "seconds added to resources.timeout in --time: the "
                           "worker builds the environment on the node before the step starts "
                           "(the step's own limit is kept to the second by the worker)"),
    "timeout": Setting(float, 5.0, "seconds a Slurm query (scontrol, squeue, sacct, scancel) may "
                       "take before the controller is taken as unreachable"),
}
