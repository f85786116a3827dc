//! Power-cut simulation for keepd (test tooling, never shipped): a FUSE
//! filesystem that keeps written data in a volatile cache until it is
//! synced and loses the rest at a simulated power cut (`model`, `fuse`),
//! and the pieces of the seeded harness that runs keepd on it (`proc`,
//! `client`). See tests/powercut/README.md.

pub mod client;
pub mod fuse;
pub mod model;
pub mod proc;
