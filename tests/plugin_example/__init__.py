"""A worked plugin example outside the tree (README: "Add a backbone", "Add a task")."""
