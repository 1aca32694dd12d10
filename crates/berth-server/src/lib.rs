//! The `berth` binary's library half: CLI, layered configuration, telemetry and wiring. `main.rs`
//! only parses arguments and calls [`cli::run`]; integration tests build an [`startup::Application`]
//! directly on port 0.

pub mod cli;
pub mod config;
pub mod keys;
pub mod listen;
pub mod startup;
pub mod telemetry;
