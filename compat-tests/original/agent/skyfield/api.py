"""Fake skyfield.api names that node/trigger.py imports."""

N = 1
W = -1
wgs84 = None
load = None


class EarthSatellite:
    def __init__(self, *args, **kwargs):
        pass
