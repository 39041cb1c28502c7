//! Field mappings (being written).
