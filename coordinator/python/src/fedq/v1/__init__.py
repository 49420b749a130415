"""fedq's wire protocol (package fedq.v1): fedq_pb2 and fedq_pb2_grpc are
generated from proto/proto/fedq/v1/fedq.proto when the package is built
(setup.py), never edited or committed."""
