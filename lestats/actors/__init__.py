"""The actor engine: Dispatcher, Workers and ResultStore on pykka, and the facade that wires them.

It knows nothing about HTTP.
"""
