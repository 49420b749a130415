"""fedq's wire protocol (package fedq.v1), generated from
proto/proto/fedq/v1/fedq.proto by coordinator/python/regenerate.py.
Do not edit fedq_pb2.py or fedq_pb2_grpc.py by hand."""
