#!/usr/bin/env python
"""The PhysioNet/CinC Challenge 2020 training entry point, called by the organizers'
``train_model.py``: ``train_12ECG_classifier(input_directory, output_directory)`` trains the
kit's default, as ``python train_model.py DATA MODEL`` does (:mod:`team_code.challenge_api`)."""


def train_12ECG_classifier(input_directory, output_directory):
    """Train the kit's default classifiers on the records of ``input_directory`` and write the
    model folder ``output_directory``."""
    from team_code.challenge_api import train_2020

    train_2020(input_directory, output_directory)
