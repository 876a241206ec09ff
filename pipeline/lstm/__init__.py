"""The Keras model and how it is trained: builders, optimiser, tf.data pipelines, callbacks,
checkpoints, devices."""
