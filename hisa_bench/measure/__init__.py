"""Measurements behind the commands: selection fidelity (iou, needle) and the helpers they share."""
