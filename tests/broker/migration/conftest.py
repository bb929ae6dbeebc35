from tests.broker.gaps.support import broker_env

__all__ = ["broker_env"]
