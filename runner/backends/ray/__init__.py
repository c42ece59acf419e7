"""The ray backend: a step is a Ray job (Ray Jobs, `JobSubmissionClient`) running the mlproject
worker, with the project's recorded code as the job's working_dir. See backend.py."""
