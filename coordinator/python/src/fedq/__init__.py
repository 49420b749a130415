"""fedq for researchers: differentially private statistics over a fedq
federation from Python, as pandas DataFrames.

    from fedq import Client
    client = Client.from_config("fed/requesters/rosa/client.toml")
    estimates, nodes = client.stats("incidents", "count", group_by="category",
                                    epsilon=0.5, purpose="research")

Identifier lookups stay with the Rust `fedq` command (they need its TFHE keys).
"""

from .client import Client
from .config import ClientConfig
from .errors import ConfigError, FedqError, InvalidQuery, NoAnswer, PartialAnswer, Refused, Unreachable
from .frames import Catalog, StatsAnswer

__all__ = [
    "Catalog",
    "Client",
    "ClientConfig",
    "ConfigError",
    "FedqError",
    "InvalidQuery",
    "NoAnswer",
    "PartialAnswer",
    "Refused",
    "StatsAnswer",
    "Unreachable",
]
