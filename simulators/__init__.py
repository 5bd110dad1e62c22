"""Line simulator: serial lines with moving bottlenecks, their ground truth, what-if and MQTT replay.

See simulators/README.md for the model, the scenario format and the contracts other parts rely on.
"""
