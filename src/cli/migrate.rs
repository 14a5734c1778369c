//! `gatehouse migrate`: creates or upgrades the PostgreSQL schema (idempotent; refuses a
//! schema newer than this build knows). Safe while replicas run: migrations take a lock.

use crate::config::{Config, StoreBackend};

pub fn run(config: &Config) -> Result<(), String> {
    if config.store.backend != StoreBackend::Postgres {
        return Err(
            "gatehouse migrate applies to [store] backend = \"postgres\" (sled needs no migration)"
                .into(),
        );
    }
    let store = crate::store::open_postgres(config, false).map_err(|e| e.to_string())?;
    let (from, to) = store.migrate().map_err(|e| e.to_string())?;
    if from == to {
        println!("schema is up to date (version {to})");
    } else {
        println!("schema migrated from version {from} to {to}");
    }
    Ok(())
}
