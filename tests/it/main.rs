//! ccr's integration tests: one test binary, real HTTP over loopback.

mod blame;
mod cli;
mod codewhisperer;
mod config;
mod conformance;
mod dashboard;
mod estimate;
mod failure_log;
mod fuzz;
mod gemini;
mod generated;
mod hardening;
mod launch;
mod live_state;
mod openai;
mod passthrough;
mod providers_test;
mod repository;
mod routing;
mod server;
mod stats;
mod support;
mod token;
