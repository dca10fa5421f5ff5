"""A model bound by its accelerator, not by the host's CPU: 20 ms per batch
plus 0.5 ms per input, slept rather than spun, served with batches of at most
16, so its capacity (about 570 answers/s) is the model's, and an overload of
10x that is still a load two shared cores can offer, parse and refuse
(bench/overload.ts --model accelerator)."""

import time

PER_BATCH_S = 0.020
PER_ITEM_S = 0.0005


def predict(inputs):
    time.sleep(PER_BATCH_S + PER_ITEM_S * len(inputs))
    return [str(sum(x)) for x in inputs]
