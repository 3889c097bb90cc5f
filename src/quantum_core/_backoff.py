"""The one backoff of the library: exponential, capped, with "equal jitter".

Handler retries, a consumer's reconnects after a broker outage, the policy listener's
reconnects and the policy's compare-and-set retry all wait with it. Jitter matters most
after a broker restart: replicas that failed together must not come back together.
"""

from __future__ import annotations

import random

__all__ = ["backoff"]

_MAX_EXPONENT = 60  # 2**60 times any sane base is far beyond any cap; avoids float overflow


def backoff(failures: int, first: float, most: float, *, jitter: bool = True) -> float:
    """Seconds to wait after ``failures`` failures in a row.

    The nominal wait is ``first``, doubling per failure, at most ``most``. With jitter, half
    of it is fixed and half random, so replicas that failed together do not retry together,
    and no retry comes much sooner than configured.
    """
    exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
    nominal = min(most, first * 2.0**exponent)
    if not jitter:
        return nominal
    return nominal * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
