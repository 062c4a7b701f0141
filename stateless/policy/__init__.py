"""Policy inheritance (Group Policy semantics) and IP pool arithmetic; pure, no I/O."""

from stateless.policy.pools import PoolExhaustedError, in_pool, next_free
from stateless.policy.resolve import Resolver, resolve

__all__ = ["PoolExhaustedError", "Resolver", "in_pool", "next_free", "resolve"]
