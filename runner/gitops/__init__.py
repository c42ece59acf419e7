"""GitOps: the lock Git holds (what was trained on what), and what is built on it: status,
gates, reports, promotion."""
