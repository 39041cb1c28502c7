//! Black-box tests of bac-runtime parts that need only a local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upstream;
