//! ccr's integration tests: one test binary, real HTTP over loopback.

mod blame;
mod cli;
mod codewhisperer;
mod config;
mod conformance;
mod estimate;
mod fuzz;
mod openai;
mod passthrough;
mod repository;
mod routing;
mod server;
mod stats;
mod support;
mod token;
