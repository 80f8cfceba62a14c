"""Le Stats Sportif: BRFSS statistics answered by an actor engine behind an asynchronous job API."""
