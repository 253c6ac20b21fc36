"""Generated gRPC stubs of widesweep.v1 (python/scripts/generate_proto.py)."""

#: Hex SHA-256 of sweep.proto then worker.proto, as these stubs were made
#: from them; the coordinator serves its own (GetVersion).
PROTO_SHA256 = "87d7b4c76af53c74ccafaf8bc80837fe316c20cf0a94af9e829f2372d58b84a9"
