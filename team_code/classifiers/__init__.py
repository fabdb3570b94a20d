"""Classifier families and the registry that names them."""
