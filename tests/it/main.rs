//! ccr's integration tests: one test binary, real HTTP over loopback.

mod cli;
mod config;
mod openai;
mod passthrough;
mod server;
mod support;
