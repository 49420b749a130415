//! Generates the gRPC code from `proto/` with protox (pure Rust, no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/fedq/v1/fedq.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    // The encoded set, for gRPC server reflection (`fedq_proto::FILE_DESCRIPTOR_SET`).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("fedq_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Undecodable bytes are the sender's error: see src/codec.rs.
        .codec_path("crate::codec::FedqCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
