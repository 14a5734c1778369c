//! gatehouse's integration tests: one test binary, so that Pingora and the rest of the crate
//! are linked once (not once per file) and the PostgreSQL scenarios share one throwaway cluster
//! (`common::postgres`). A module per capability; `common` is the harness they all drive (the
//! real `gatehouse` binary on loopback ports, real upstreams, real Django, real nginx).
//!
//! Run one capability with its module path: `cargo test --test it tokens::`.

mod common;

// The user API: every endpoint's contract, DRF's and Django's answers, the OpenAPI document,
// property tests of the parsers, tokens and their revocation.
mod api_contract;
mod audit_api;
mod django_parity;
mod drf_answers;
mod properties;
mod schema;
mod tokens;

// The proxy path: who answers a path (the owned prefixes), routes, policies, paths at the
// edge, forward-auth, identity for upstreams, groups, TLS on both sides, live reload.
mod assertion;
mod console;
mod console_access;
mod console_pages;
mod console_users;
mod csrf_django;
mod forward_auth;
mod groups;
mod prefixes;
mod proxy;
mod reload;
mod route_policy;
mod safe_paths;
mod tls;
mod web_browser;
mod web_keys;
mod web_mfa;
mod web_sessions;

// Operations: metrics, probes, logs, drain and upgrade; holding under abuse; deploy files.
mod deploy_files;
mod operations;
mod resilience;

// Stores and the command line: the store contract, durability, the CLI, imports from Django
// and the switch-over.
mod import;
mod import_progress;
mod postgres_search;
mod store_cli;
mod store_contract;
mod switchover;

// Several replicas on PostgreSQL: races, revocation, outages, TLS to the database.
mod postgres_tls;
mod replica_sessions;
mod replicas;
mod replicas_outage;

// The audit log: every action's event, through kill -9, replicas, floods; no secrets in it.
mod audit;

// Mail: SMTP, the outbox, replicas sending once.
mod mail;
mod mail_replicas;

// The second factor (TOTP, recovery codes): over HTTP on sled, and across two replicas.
mod mfa;
mod mfa_replicas;

// API keys and service accounts (SPEC §19): made, listed, revoked; staff's service accounts.
mod apikey_routes;
mod apikeys;

// Rate limits per route (SPEC §20): budgets, keys, headers, reload, bounded memory, replicas.
mod rate_limits;

// The harness checks its own checks, and its browser (Chromium over WebDriver).
mod browser_harness;
mod harness;
