"""Independent reference encoding of a fixed set of Mediachain objects.

Builds every object kind of the data model with the Python `dag-cbor` and `multiformats`
packages (a separate implementation from the Rust crates) and prints one JSON line per object:
{"name": ..., "hex": <DAG-CBOR bytes>, "cid": <CIDv1 base32>}. The Rust test `crosscheck.rs`
builds the same objects with the `mediachain` model and requires identical bytes and CIDs.
"""

import json

import dag_cbor
from multiformats import CID, multihash

TS = 1_700_000_000


def cid(codec, data):
    return CID("base32", 1, codec, multihash.digest(data, "sha2-256"))


out = []


def emit(name, obj):
    data = dag_cbor.encode(obj)
    c = cid("dag-cbor", data)
    out.append({"name": name, "hex": data.hex(), "cid": str(c)})
    return c


nil = emit("nil", {"type": "nil"})
blob = cid("raw", b"analytical engine notes")
ada = emit("entity", {"type": "entity", "meta": {"name": "Ada Lovelace", "x-unknown": {"nested": "kept", "n": 42}}})
babbage = emit("entity2", {"type": "entity", "meta": {"name": "Charles Babbage"}, "metaSource": blob})
notes = emit("artefact", {
    "type": "artefact",
    "meta": {"name": "Notes on the Analytical Engine", "created": "1843", "description": "Note G"},
    "data": blob,
})
copy = emit("artefact2", {"type": "artefact", "meta": {"name": "Facsimile"}})
created = emit("artefactCreatedBy", {"type": "artefactCreatedBy", "chain": nil, "ref": notes, "entity": ada})
referenced = emit("artefactReferencedBy", {
    "type": "artefactReferencedBy", "chain": nil, "ref": notes, "meta": {"url": "https://example.org/notes"},
})
emit("artefactUpdate", {"type": "artefactUpdate", "chain": created, "ref": notes, "meta": {"name": "Sketch of the Analytical Engine"}})
emit("artefactLink", {"type": "artefactLink", "chain": nil, "ref": copy, "artefactLink": notes})
emit("artefactDerivedBy", {"type": "artefactDerivedBy", "chain": nil, "ref": copy, "artefactLink": notes})
emit("artefactRightsOwnedBy", {"type": "artefactRightsOwnedBy", "chain": created, "ref": notes, "entity": babbage})
link = emit("artefactChainLink", {"type": "artefactChainLink", "chain": created, "ref": notes, "chainMerge": referenced})
update = emit("entityUpdate", {"type": "entityUpdate", "chain": nil, "ref": ada, "meta": {"name": "Augusta Ada King"}})
emit("entityLink", {"type": "entityLink", "chain": update, "ref": ada, "entityLink": babbage})
emit("entityChainLink", {"type": "entityChainLink", "chain": update, "ref": ada, "chainMerge": nil})
emit("insert", {"type": "insert", "ref": notes, "timestamp": TS})
emit("update", {"type": "update", "ref": notes, "chain": created, "chainPrevious": nil, "timestamp": TS + 1})
emit("chainMerge", {
    "type": "chainMerge", "ref": notes, "chain": link, "chainPrevious": created, "chainMerge": referenced, "timestamp": TS + 2,
})

for line in out:
    print(json.dumps(line))
