//! Micro-benchmarks of the per-request hot path: token verification and the auth decision
//! for a cached user. Run: `cargo bench --bench hot_path`.

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::auth::tokens::{TokenType, Tokens};

fn token_verification(c: &mut Criterion) {
    let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef", 300, 86400, 0);
    let access = tokens.issue(TokenType::Access, 42, 0, None, None).token;
    c.bench_function("verify HS256 access token", |b| {
        b.iter(|| tokens.verify(std::hint::black_box(&access), Some(TokenType::Access)))
    });
}

criterion_group!(benches, token_verification);
criterion_main!(benches);
