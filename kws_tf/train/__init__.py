"""Training room: everything that imports TensorFlow/Keras lives here."""
