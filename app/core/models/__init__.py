"""Model operations shared by hosts (pull progress accounting, name rules)."""
