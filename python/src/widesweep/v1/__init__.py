"""Generated gRPC stubs of widesweep.v1 (python/scripts/generate_proto.py)."""

#: Hex SHA-256 of sweep.proto then worker.proto, as these stubs were made
#: from them; the coordinator serves its own (GetVersion).
PROTO_SHA256 = "9fee320d380a2ff56af41d584a21d9318ae0e80ed8eac9505a7ae22ceb3de854"
