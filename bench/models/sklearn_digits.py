"""A real scikit-learn model: LogisticRegression trained on the digits data
set (8x8 images, 64 doubles per input) at import; answers the digit."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

_digits = load_digits()
_model = LogisticRegression(max_iter=2000).fit(_digits.data, _digits.target)

# A few real images for load generators: `python sklearn_digits.py` prints them as JSON.
SAMPLES = _digits.data[:16].tolist()


def predict(inputs):
    return [str(int(label)) for label in _model.predict(np.stack(inputs))]


if __name__ == "__main__":
    import json

    print(json.dumps(SAMPLES))
