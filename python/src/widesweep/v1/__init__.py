"""Generated gRPC stubs of widesweep.v1 (python/scripts/generate_proto.py)."""

#: Hex SHA-256 of sweep.proto then worker.proto, as these stubs were made
#: from them; the coordinator serves its own (GetVersion).
PROTO_SHA256 = "f968e4048cfa84086deab1bb125b76b165da8eb5b2d405692a71e8872d847310"
