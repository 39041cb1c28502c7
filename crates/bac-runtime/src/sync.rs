//! The sync engine (being built): field mappings.
pub mod mapping;
