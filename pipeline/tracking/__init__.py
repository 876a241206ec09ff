"""MLflow: runs, the model registry and champion promotion."""
