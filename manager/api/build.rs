//! Generates the tonic clients and servers from proto/*.proto. Needs
//! `protoc` (Debian: protobuf-compiler, installed by hack/deps.sh).

fn main() -> std::io::Result<()> {
    let protos = [
        "proto/namespaces.proto",
        "proto/content.proto",
        "proto/images.proto",
        "proto/leases.proto",
        "proto/transfer.proto",
        "proto/introspection.proto",
    ];
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])
}
