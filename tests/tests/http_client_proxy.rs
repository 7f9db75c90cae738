//! em-http's client through an HTTP forward proxy to nginx: an http://
//! request goes to the proxy in absolute form (with the proxy's
//! credentials), an https:// one through a `CONNECT` tunnel with TLS to
//! the origin inside it (the proxy never sees the request).

mod support;

use em_http::http::StatusCode;
use em_http::{Client, Proxy};
use support::certs::Certs;
use support::forward_proxy::ForwardProxy;
use support::nginx::{self, Nginx};
use support::run_with_watchdog;

#[test]
fn http_and_https_requests_go_through_the_proxy() {
    let certs = Certs::new("http-client-proxy");
    let ca = std::fs::read(&certs.ca).unwrap();
    let nginx = Nginx::start_tls("proxy", &certs);
    let proxy = ForwardProxy::start();
    let (plain, tls, proxy_url) = (nginx.base(), nginx.tls_base(), proxy.url());
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let client = Client::builder()
                .proxy(
                    Proxy::http(&proxy_url)
                        .unwrap()
                        .basic_auth("user", Some("pw")),
                )
                .root_certs_pem(ca)
                .build();
            let r = client.get(format!("{plain}/kib.bin")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.bytes().await.unwrap(), nginx::kib());
            let r = client.get(format!("{tls}/small.txt")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.text().await.unwrap(), nginx::SMALL);
            // The tunnel is kept alive like any connection: a second
            // request through it opens no new tunnel.
            let r = client.get(format!("{tls}/kib.bin")).send().await.unwrap();
            assert_eq!(r.bytes().await.unwrap(), nginx::kib());
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    let heads = proxy.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    let lines: Vec<&str> = heads.iter().map(|h| h.lines().next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            format!("GET {}/kib.bin HTTP/1.1", nginx.base()),
            format!("CONNECT localhost:{} HTTP/1.1", nginx.tls_port),
        ]
    );
    for head in &heads {
        // base64("user:pw")
        assert!(
            head.contains("proxy-authorization: Basic dXNlcjpwdw==\r\n"),
            "{head}"
        );
    }
    let log = nginx.wait_for_log(3);
    assert_eq!(
        log.iter().map(|l| l.uri.as_str()).collect::<Vec<_>>(),
        ["/kib.bin", "/small.txt", "/kib.bin"]
    );
}
