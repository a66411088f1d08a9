"""Code shared by two or more services: settings, logging, Redis keys, the task model and store."""
