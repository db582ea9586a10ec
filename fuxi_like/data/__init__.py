"""Processed-dataset building and tf.data input pipelines."""
