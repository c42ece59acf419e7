"""Writing new projects: `mlproject init`'s DVC files (native, no DVC needed) and Git steps."""
