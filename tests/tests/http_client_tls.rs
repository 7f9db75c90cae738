//! em-http's client over TLS to nginx (OpenSSL on the server side): a
//! certificate from the test CA is accepted once the CA is trusted, and
//! refused when it is not or when it names another host; the test-only
//! `danger_accept_invalid_certs` takes any; a client certificate reaches
//! nginx, which checks it against the CA.

mod support;

use em_http::http::StatusCode;
use em_http::{Client, ClientErrorKind};
use support::certs::Certs;
use support::nginx::{self, Nginx};
use support::run_with_watchdog;

#[test]
fn nginx_over_tls_is_trusted_only_through_the_ca_and_for_its_name() {
    let certs = Certs::new("http-client-nginx");
    let ca = std::fs::read(&certs.ca).unwrap();
    let nginx = Nginx::start_tls("tls", &certs);
    let (good, port) = (nginx.tls_base(), nginx.tls_port);
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            // Trusted: the CA, and the name the certificate is for.
            let trusting = Client::builder().root_certs_pem(ca.clone()).build();
            let r = trusting
                .get(format!("{good}/small.txt"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.text().await.unwrap(), nginx::SMALL);
            let r = trusting
                .get(format!("{good}/kib.bin"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.bytes().await.unwrap(), nginx::kib());
            assert_eq!(trusting.connections(), (1, 1), "kept alive over TLS");

            // Untrusted: Mozilla's roots do not include the test CA.
            let e = Client::new()
                .get(format!("{good}/small.txt"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Tls, "{e}");
            assert!(e.is_tls());

            // The CA is trusted but the certificate is for "localhost",
            // not "127.0.0.1".
            let e = trusting
                .get(format!("https://127.0.0.1:{port}/small.txt"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Tls, "{e}");

            // Tests only: anything goes, for any name.
            let reckless = Client::builder().danger_accept_invalid_certs().build();
            for base in [good.clone(), format!("https://127.0.0.1:{port}")] {
                let r = reckless
                    .get(format!("{base}/small.txt"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.text().await.unwrap(), nginx::SMALL);
            }
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    drop(nginx);
}

#[test]
fn a_client_certificate_is_presented_to_nginx_and_checked() {
    let certs = Certs::new("http-client-cert");
    let ca = std::fs::read(&certs.ca).unwrap();
    let chain = std::fs::read(&certs.client_cert).unwrap();
    let key = std::fs::read(&certs.client_key).unwrap();
    // A client certificate another CA signed.
    let stranger = Certs::new("http-client-cert-stranger");
    let (other_chain, other_key) = (
        std::fs::read(&stranger.client_cert).unwrap(),
        std::fs::read(&stranger.client_key).unwrap(),
    );
    let nginx = Nginx::start_tls("client-cert", &certs);
    let base = nginx.tls_base();
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let url = format!("{base}/client-cert");
            // Without one: nginx says so.
            let r = Client::builder()
                .root_certs_pem(ca.clone())
                .build()
                .get(&url)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            assert_eq!(r.text().await.unwrap(), "NONE\n");
            // With the CA's client certificate: checked, and its subject
            // seen.
            let r = Client::builder()
                .root_certs_pem(ca.clone())
                .client_cert_pem(chain, key)
                .build()
                .get(&url)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.text().await.unwrap(), "CN=em test client\n");
            // Signed by another CA: nginx refuses it (400 "The SSL
            // certificate error" with `optional`).
            let r = Client::builder()
                .root_certs_pem(ca)
                .client_cert_pem(other_chain, other_key)
                .build()
                .get(&url)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    drop(nginx);
}
