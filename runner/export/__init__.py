"""`mlproject runs export`: run records copied into an MLflow tracking server.

The records stay the source of truth; an export is a copy for teams whose dashboards are
MLflow's. command.py is the verb, mlflow.py the mapping of a record onto an MLflow run (the
only module that imports mlflow, and only when the verb runs)."""
