"""Generated gRPC stubs of widesweep.v1 (python/scripts/generate_proto.py)."""

#: Hex SHA-256 of sweep.proto then worker.proto, as these stubs were made
#: from them; the coordinator serves its own (GetVersion).
PROTO_SHA256 = "bf02f4bc876ad0a12c2036bd4870030043551bda16a1fd06a2066f8f729ccb5d"
