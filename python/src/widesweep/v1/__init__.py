"""Generated gRPC stubs of widesweep.v1 (python/scripts/generate_proto.py)."""

#: Hex SHA-256 of sweep.proto then worker.proto, as these stubs were made
#: from them; the coordinator serves its own (GetVersion).
PROTO_SHA256 = "e93ebf29bf5caecd7ac415e83f91f0e447a04145b5a51ac356b0b6e55556134e"
