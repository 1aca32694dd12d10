//! Integration tests: real servers on 127.0.0.1, each on a fresh SQLite file and again on a fresh
//! PostgreSQL database (`#[backend_test]`).

// Tests may unwrap: a panic is the failure report. (Request-path code may not; see clippy.toml.)
#![allow(clippy::unwrap_used)]

mod accounts_api;
mod bell;
mod binary;
mod browser;
mod builds;
mod crash;
mod delivery;
mod deploy;
mod email;
mod engine;
mod hardening;
mod in_process;
mod mirror;
mod namespace_notifications;
mod notifications_api;
mod observability;
mod oci_conformance;
mod openapi;
mod permission_matrix;
mod quay_clients;
mod real_clients;
mod registry_auth;
mod registry_lifecycle;
mod repo_push_events;
mod secrets_at_rest;
mod secscan;
mod storage;
mod support;
mod tag_expiry;
mod ui;
