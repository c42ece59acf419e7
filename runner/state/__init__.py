"""What mlproject keeps under a project's `.mlproject/`: run records, the up-to-date index, and
the metrics read from steps."""
