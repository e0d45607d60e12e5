"""Training and evaluation of the bridge and the image encoder."""
