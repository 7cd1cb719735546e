"""The paper's closed forms and bounds, and sharper predictions, as functions.

Every function takes the same inputs as the simulator (p(0) arrays, n, N, m) and returns
quantities under the same metric names, so theory against simulation is one subtraction.
"""
