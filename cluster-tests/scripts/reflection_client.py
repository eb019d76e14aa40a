"""A gRPC reflection client that is not ours: Python's grpcio and
grpcio-reflection, over mutual TLS. Lists a registry node's services and
reads the methods of tenantry.v1.Registry through grpcio-reflection's own
descriptor database (which speaks only v1alpha), then lists the services
again over v1 (the same messages, v1's method). Prints one JSON object.

Usage: reflection_client.py HOST:PORT CA CERT KEY  (CERT and KEY "-": no
client certificate)
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def read(path):
    with open(path, "rb") as file:
        return file.read()


def main():
    addr, ca, cert, key = sys.argv[1:5]
    if cert == "-":
        credentials = grpc.ssl_channel_credentials(read(ca))
    else:
        credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    with grpc.secure_channel(addr, credentials) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        database = ProtoReflectionDescriptorDatabase(channel)
        v1alpha = sorted(database.get_services())
        registry = descriptor_pool.DescriptorPool(database).FindServiceByName("tenantry.v1.Registry")
        v1_info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        answers = v1_info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        v1 = sorted(service.name for answer in answers for service in answer.list_services_response.service)
    print(json.dumps({"v1alpha": v1alpha, "v1": v1, "registry_methods": sorted(m.name for m in registry.methods)}))


if __name__ == "__main__":
    main()
