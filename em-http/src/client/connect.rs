//! Opening a connection for a pool key: the name resolved (on tokio's
//! blocking pool), em's TCP connect, a proxy's `CONNECT` tunnel for https,
//! and TLS with the host name verified; all within the connect timeout.

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use http::header::{HOST, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method};

use crate::client::connection::{ClientConn, ConnShared};
use crate::client::error::{ClientError, ClientErrorKind, ClientResult};
use crate::client::exchange::{Exchange, ExchangeGuard};
use crate::client::pool::PoolKey;
use crate::client::{ClientInner, Options};
use crate::codec::client::{Expect, HeadFields, RequestOut};

/// Closes a connection still being set up when its setup is dropped (the
/// connect timeout, a cancelled request).
struct SetupGuard(Option<Rc<ConnShared>>);

impl Drop for SetupGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.close_with(ClientErrorKind::ConnectTimeout, "");
        }
    }
}

/// A new connection to `key`'s origin (or proxy), ready for requests, and
/// in the pool if keep-alive is on (from the moment it is made).
pub(crate) async fn establish(
    client: &Rc<ClientInner>,
    key: &PoolKey,
    options: &Options,
) -> ClientResult<Rc<ConnShared>> {
    let mut guard = SetupGuard(None);
    let setup = setup(client, key, options, &mut guard);
    let conn = match tokio::time::timeout(options.connect_timeout, setup).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ClientError::new(
                ClientErrorKind::ConnectTimeout,
                format!("after {:?}", options.connect_timeout),
            ))
        }
    };
    guard.0 = None;
    conn.set_up(options.keep_alive);
    Ok(conn)
}

async fn setup(
    client: &Rc<ClientInner>,
    key: &PoolKey,
    options: &Options,
    guard: &mut SetupGuard,
) -> ClientResult<Rc<ConnShared>> {
    let shared = ConnShared::new(key.clone(), Rc::downgrade(&client.pool));
    let handler = ClientConn {
        shared: shared.clone(),
        max_header_size: client.limits.max_header_size,
        max_headers: client.limits.max_headers,
    };
    #[cfg(feature = "socks")]
    if let Some((_, _, true)) = &key.proxy {
        socks5(key, options, handler).await?;
        guard.0 = Some(shared.clone());
        if options.keep_alive {
            client.pool.insert(&shared);
        }
        return finish(client, key, options, shared).await;
    }
    let (host, port) = key.dial();
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                ClientError::new(ClientErrorKind::Dns, format!("{host}: {e}")).with_source(e)
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ClientError::new(
            ClientErrorKind::Dns,
            format!("{host}: no address"),
        ));
    }
    let conn = em_core::connect(addrs, handler)
        .map_err(|e| ClientError::new(ClientErrorKind::Connect, e.to_string()))?;
    conn.set_pending_connect_timeout(options.connect_timeout);
    shared.set_conn(conn);
    guard.0 = Some(shared.clone());
    if options.keep_alive {
        // In the pool while being set up: pipelinable requests may wait
        // for it (`Pool::joinable`); it leaves the pool when it ends.
        client.pool.insert(&shared);
    }
    shared.ready().await?;
    finish(client, key, options, shared).await
}

/// The rest of the setup on a connected socket: a proxy's tunnel, TLS.
async fn finish(
    client: &Rc<ClientInner>,
    key: &PoolKey,
    options: &Options,
    shared: Rc<ConnShared>,
) -> ClientResult<Rc<ConnShared>> {
    if key.https {
        if key.http_proxy() {
            tunnel(&shared, key, options).await?;
        }
        shared.start_tls(&client.tls_for(&key.host))?;
        shared.ready().await?;
    }
    Ok(shared)
}

/// Connects through a SOCKS5 proxy: the handshake on a tokio stream (the
/// `tokio-socks` crate), then the stream is attached to em.
#[cfg(feature = "socks")]
async fn socks5(key: &PoolKey, options: &Options, handler: ClientConn) -> ClientResult<()> {
    use tokio_socks::tcp::Socks5Stream;
    let (proxy_host, proxy_port) = key.dial();
    let stream = tokio::net::TcpStream::connect((proxy_host, proxy_port))
        .await
        .map_err(|e| {
            ClientError::new(
                ClientErrorKind::Connect,
                format!("SOCKS5 proxy {proxy_host}:{proxy_port}: {e}"),
            )
        })?;
    let target = (key.host.as_str(), key.port);
    let credentials = options.proxy.as_ref().and_then(|p| p.socks_credentials());
    let tunnel = match credentials {
        Some((user, password)) => {
            Socks5Stream::connect_with_password_and_socket(stream, target, user, password).await
        }
        None => Socks5Stream::connect_with_socket(stream, target).await,
    }
    .map_err(|e| {
        ClientError::new(
            ClientErrorKind::Connect,
            format!("SOCKS5 proxy {proxy_host}:{proxy_port}: {e}"),
        )
    })?;
    let stream = tunnel.into_inner();
    let _ = stream.set_nodelay(true);
    let shared = handler.shared.clone();
    let conn = em_core::attach(stream, handler)
        .map_err(|e| ClientError::new(ClientErrorKind::Connect, e.to_string()))?;
    shared.set_conn(conn);
    shared.attached();
    Ok(())
}

/// Asks the proxy for a tunnel to the origin (`CONNECT host:port`).
async fn tunnel(shared: &Rc<ConnShared>, key: &PoolKey, options: &Options) -> ClientResult<()> {
    let authority = if key.host.contains(':') {
        format!("[{}]:{}", key.host, key.port)
    } else {
        format!("{}:{}", key.host, key.port)
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&authority) {
        headers.insert(HOST, v);
    }
    if let Some(auth) = options.proxy.as_ref().and_then(|p| p.authorization()) {
        headers.insert(PROXY_AUTHORIZATION, auth.clone());
    }
    let exchange = Exchange::new(shared);
    let _guard = ExchangeGuard(exchange.clone());
    shared.send(
        exchange.clone(),
        RequestOut::Head {
            method: &Method::CONNECT,
            target: &authority,
            fields: HeadFields::only(&headers),
            body: b"",
            expect: Expect::Tunnel,
        },
    )?;
    let head = poll_fn(|cx| exchange.poll_head(cx)).await?;
    if !head.parts.status.is_success() {
        return Err(ClientError::new(
            ClientErrorKind::Connect,
            format!(
                "the proxy refused the tunnel to {authority}: {}",
                head.parts.status
            ),
        ));
    }
    Ok(())
}
