//! Background jobs that keep the store tidy (expired sessions, old audit events): each on a
//! thread and runtime of its own, so no request ever waits for one.

use std::future::Future;
use std::time::Duration;

/// Runs `job` now and then every `period`, for the life of the process.
pub fn every<F, Fut>(name: &str, period: Duration, job: F) -> Result<(), String>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{name} runtime: {e}"))?;
    std::thread::Builder::new()
        .name(format!("gatehouse-{}", name.replace(' ', "-")))
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    job().await;
                    tokio::time::sleep(period).await;
                }
            })
        })
        .map(|_| ())
        .map_err(|e| format!("{name} thread: {e}"))
}
