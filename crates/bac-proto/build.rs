//! Compiles `proto/` into Rust with tonic and adds proto3-JSON serde impls (pbjson),
//! so event payloads follow the canonical JSON mapping.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    env::set_var("PROTOC", protoc);
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "bac/api/v1/edge.proto",
        "bac/common/v1/common.proto",
        "bac/integration/v1/integration.proto",
        "bac/events/v1/events.proto",
        "bac/odoo/v1/odoo.proto",
        "bac/zoho/v1/zoho.proto",
        "bac/google_workspace/v1/google_workspace.proto",
        "bac/messaging/v1/messaging.proto",
        "bac/tally/v1/tally.proto",
        "bac/tally/v1/agent.proto",
    ]
    .map(|f| root.join(f));
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor = out.join("bac_descriptor.bin");
    tonic_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(&files, std::slice::from_ref(&root))?;
    let set = std::fs::read(&descriptor)?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        // Event payloads keep the proto field names (snake_case, like the REST API) and
        // carry every field, so consumers never guess at omitted defaults.
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".bac"])?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
