#!/usr/bin/env python
"""The PhysioNet/CinC Challenge 2020 inference entry points, called by the organizers'
``driver.py``: ``load_12ECG_model(model_input)`` once, then ``run_12ECG_classifier(data,
header_data, model)`` per record, which returns ``(labels, scores, classes)`` as the driver
writes them; the same outputs as ``python run_model.py MODEL DATA OUTPUTS``
(:mod:`team_code.challenge_api`)."""


def load_12ECG_model(model_input):
    """The model folder ``model_input`` written by ``train_12ECG_classifier`` or
    ``train_model.py``."""
    from team_code.challenge_api import load_2020

    return load_2020(model_input)


def run_12ECG_classifier(data, header_data, model):
    """``(labels, scores, classes)`` of one record: ``data`` its ``val`` matrix (leads x
    samples, digital units), ``header_data`` its header lines."""
    from team_code.challenge_api import classify_2020

    return classify_2020(data, header_data, model)
