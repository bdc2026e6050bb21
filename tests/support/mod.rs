//! Support shared by integration tests: in-process contract servers that stand in for the remote
//! APIs plugins speak, one folder each. A test file includes it with `mod support;` (as
//! `tests/common/mod.rs` is included with `mod common;`) and uses what it needs.
#![allow(dead_code)] // each test file uses a different part

pub mod kube;
pub mod loopback;
pub mod openstack;
pub mod vsphere;
