"""data.gouv.fr (udata 17) connector: ``DatagouvConnector`` with its ``DatagouvConfig``.

``client`` is a thin httpx client with the error mapping, ``mapping`` turns a revision into udata payloads.
The local emulator of the API lives in ``emulators.datagouv``.
"""

from connectors.datagouv.connector import DatagouvConfig, DatagouvConnector

__all__ = ["DatagouvConfig", "DatagouvConnector"]
