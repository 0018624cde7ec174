"""schemathesis hooks for the Mediachain peer API (loaded through SCHEMATHESIS_HOOKS).

Transactions and objects travel as DAG-CBOR (`application/cbor`); generated bodies for it are
sent as raw bytes, exactly like `application/octet-stream`.
"""

import schemathesis

schemathesis.serializer.alias("application/cbor", "application/octet-stream")
