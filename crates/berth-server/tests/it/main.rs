//! Integration tests: real servers on 127.0.0.1, each on a fresh SQLite file and again on a fresh
//! PostgreSQL database (`backend_test!`).

mod accounts_api;
mod binary;
mod openapi;
mod permission_matrix;
mod registry_auth;
mod support;
