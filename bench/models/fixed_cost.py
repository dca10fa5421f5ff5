"""A model whose cost is 2 ms per batch plus 0.05 ms per input, like an
accelerator: it sleeps rather than spins, so on this 2-core machine the cost
is wall time, not CPU taken from the router and the load generator."""

import time

PER_BATCH_S = 0.002
PER_ITEM_S = 0.00005


def predict(inputs):
    time.sleep(PER_BATCH_S + PER_ITEM_S * len(inputs))
    return ["0"] * len(inputs)
