"""FORMATS.md's worked examples: the test vectors every layer is checked against."""

WORKED_LINE = (
    b'98d0872f:{"event_type":"ProductCreated","event_id":"Product:Created:p1:6f1c2a1e-0000-4000-8000-000000000001",'
    b'"timestamp":1767225600,"payload":"{\\"id\\":\\"p1\\",\\"name\\":\\"Pen\\",\\"price\\":1.5}","aggregate_id":"p1",'
    b'"event_hash":"0e07f491226f706e3855a4527f70bcb5bec7ca0a62310e8221ef925c9e8f11eb","previous_hash":null}\n'
)
WORKED_FRAME = bytes.fromhex(
    "51000000000000000154026531fc00f15365027b7d0001406262333065623039643537316135346239386134386236653962"
    "623062316466643763653262356131663963373431353631656138303732653135373938313400"
)
EMPTY_MANIFEST = (
    b'{"__lithair_native_checkpoint":{"version":1,"journal":"events.raftlog","offset":0,"covered_events":0,'
    b'"prefix_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","last_event_hash":null,'
    b'"state":"{}"},"sha256":"502dae9a00390661059cfad56ba2dfc49e9e678575d7809fbedf3eca01df92bf"}'
)
