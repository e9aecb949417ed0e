"""Stimuli: category folders, their checks and the images they hold."""

from netfloc.stimuli.folder import StimulusSet, load_stimulus_set, read_image

__all__ = ["StimulusSet", "load_stimulus_set", "read_image"]
