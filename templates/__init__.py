"""Files that mlproject copies into users' repositories (project skeletons, CI workflows)."""
