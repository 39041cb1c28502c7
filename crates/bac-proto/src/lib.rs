//! Generated protobuf and gRPC code for every BAC contract (`proto/bac/**`), plus the
//! encoded descriptor set that servers hand to gRPC reflection so `grpcurl` works.
#![allow(
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

/// Encoded `FileDescriptorSet` of all BAC protos, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bac_descriptor.bin"));

pub use pbjson_types as wkt;

/// The edge options (`(bac.api.v1.method)`, `(bac.api.v1.field)`) the gateway reads.
pub mod api {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.api.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.api.v1.serde.rs"));
    }
}
pub mod common {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.common.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.common.v1.serde.rs"));
    }
}
pub mod integration {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.integration.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.integration.v1.serde.rs"));
    }
}
pub mod events {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.events.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.events.v1.serde.rs"));
    }
}
pub mod odoo {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.odoo.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.odoo.v1.serde.rs"));
    }
}
/// `bac.zoho.v1`: Zoho CRM records (leads, contacts, deals).
pub mod zoho {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.zoho.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.zoho.v1.serde.rs"));
    }
}
/// `bac.google_workspace.v1`: Gmail, Calendar, Drive and the Admin Directory.
pub mod google_workspace {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.google_workspace.v1.rs"));
        include!(concat!(
            env!("OUT_DIR"),
            "/bac.google_workspace.v1.serde.rs"
        ));
    }
}
/// `bac.messaging.v1`: email deliveries and templates.
pub mod messaging {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.messaging.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.messaging.v1.serde.rs"));
    }
}
/// `bac.tally.v1`: ledgers, vouchers and stock items of a Tally company.
pub mod tally {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bac.tally.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/bac.tally.v1.serde.rs"));
    }
}
