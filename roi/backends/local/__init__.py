"""The local engine: Hugging Face models run by roi's own batched generation (torch stays inside this package)."""
