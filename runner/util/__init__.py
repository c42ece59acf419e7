"""Small utilities every part uses: the terminal, processes, hashing, files, exit codes."""
