//! The floor under gatehouse's proxy path: a bare Pingora 0.9 `ProxyHttp` that forwards every
//! request to one upstream and does nothing else (no routing, auth, headers, metrics or log),
//! on one worker thread like the proxies it is compared with. `benches/load/run.sh` starts it
//! beside nginx, HAProxy and gatehouse, so the table separates Pingora's cost from ours.
//!
//! `cargo bench --bench bare_pingora -- LISTEN UPSTREAM` (e.g. `127.0.0.1:7000 127.0.0.1:8000`).

use async_trait::async_trait;
use pingora::modules::http::compression::ResponseCompressionBuilder;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use std::net::SocketAddr;

/// The allocator gatehouse's binary uses, so the floor differs from gatehouse only in code.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Bare {
    upstream: SocketAddr,
    default_modules: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    /// The same (empty) downstream module list as gatehouse, unless `BARE_DEFAULT_MODULES=1`
    /// asks for Pingora's default (a disabled compression module) to measure the difference.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        if self.default_modules {
            modules.add_module(ResponseCompressionBuilder::enable(0));
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    // `cargo bench` appends `--bench`; only the two addresses count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench bare_pingora -- LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("UPSTREAM must be an address like 127.0.0.1:8000, not {upstream:?}");
        std::process::exit(2);
    };
    // gatehouse's `server.work_stealing`, as an environment variable here.
    let work_stealing = std::env::var("BARE_WORK_STEALING").map_or(true, |v| v != "false");
    let default_modules = std::env::var("BARE_DEFAULT_MODULES").is_ok_and(|v| v == "1");
    let conf = ServerConf {
        threads: 1,
        work_stealing,
        daemon: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare {
            upstream,
            default_modules,
        },
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
