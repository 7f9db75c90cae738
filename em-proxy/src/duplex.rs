//! Duplex mode (em-proxy's `-d`, "tee"): every client byte goes to the
//! production server and a copy to each mirror; only production answers.
//! A thin face over [`Proxy`]: a setup with one server and mirrors, and no
//! callbacks, so production's replies take the splice path.

use std::fmt;
use std::net::ToSocketAddrs;
use std::rc::Rc;

use em_core::Endpoint;

use crate::error::Result;
use crate::proxy::Proxy;
use crate::server::ProxyServer;

/// The name of the production server in a duplex proxy's sessions.
pub const RELAY: &str = "relay";

/// A duplex proxy: serve from production, mirror to staging (em-proxy's
/// "redirect production traffic to staging and production server, but
/// only respond from production server").
///
/// Each client gets a connection to the relay (production) and one to
/// each mirror. Every byte the client sends goes to the relay and a copy
/// to each mirror; only the relay's replies reach the client (spliced, kernel to kernel, where
/// em can). A mirror that is slow, down or crashes never slows, blocks or
/// breaks a client's session: past its watermark its copies are dropped
/// and counted ([`Stats::mirror_dropped_bytes`](crate::Stats::mirror_dropped_bytes)),
/// its replies are read and dropped, its failure is counted, and new
/// sessions skip it for a back-off delay, then try again. When the relay
/// ends, the client is closed once its replies have left; when the client
/// ends, each backend is closed once its copy has left.
///
/// ```no_run
/// use em_proxy::Duplex;
///
/// em_core::run(|| {
///     let proxy = Duplex::new("127.0.0.1:8081")
///         .mirror("127.0.0.1:8082")
///         .start("127.0.0.1:8080")?;
///     proxy.stop_on_signals(std::time::Duration::from_secs(10))?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Duplex {
    relay: Endpoint,
    mirrors: Vec<Endpoint>,
    proxy: Proxy,
}

impl fmt::Debug for Duplex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Duplex")
            .field("relay", &self.relay.to_string())
            .field(
                "mirrors",
                &self
                    .mirrors
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>(),
            )
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl Duplex {
    /// A duplex proxy to `relay` (production: it gets every byte and
    /// answers), with no mirror yet and [`Proxy`]'s default options.
    pub fn new(relay: impl Into<Endpoint>) -> Duplex {
        Duplex {
            relay: relay.into(),
            mirrors: Vec::new(),
            proxy: Proxy::new(),
        }
    }

    /// Adds a mirror (staging: a copy of every byte, never waited for).
    /// Its name in the sessions, and in logs, is its address.
    pub fn mirror(mut self, mirror: impl Into<Endpoint>) -> Duplex {
        self.mirrors.push(mirror.into());
        self
    }

    /// The options: backpressure, mirror watermark, mirror back-off
    /// ([`Proxy::bufsize`], [`Proxy::mirror_watermark`],
    /// [`Proxy::mirror_backoff`]).
    pub fn options(mut self, proxy: Proxy) -> Duplex {
        self.proxy = proxy;
        self
    }

    /// Starts it on `listen`. Reactor thread. The errors of
    /// [`Proxy::start_with`].
    pub fn start<A>(self, listen: A) -> Result<ProxyServer>
    where
        A: ToSocketAddrs + fmt::Debug,
    {
        let relay = self.relay;
        let mirrors: Rc<[(String, Endpoint)]> = self
            .mirrors
            .into_iter()
            .map(|m| (m.to_string(), m))
            .collect();
        self.proxy.start_with(listen, move |session| {
            session.server(RELAY, relay.clone());
            for (name, mirror) in mirrors.iter() {
                session.mirror(name, mirror.clone());
            }
        })
    }
}
