"""The data layer: the immutable Dataset, its loader, the nine statistics, the demo generator.

It knows nothing about actors or HTTP.
"""
