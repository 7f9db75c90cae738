//! TLS set-up the example programs share: the crypto provider (ring),
//! certificate chains and private keys read from PEM files, a self-signed
//! certificate for `localhost` made at start, and a server configuration
//! from either.
//!
//! Everything here runs once, at start, on any thread; errors are
//! `io::Error`s that name the file or the step that failed.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// The crypto provider every example uses: rustls on `ring`, its key
/// exchange groups in the order clients commonly offer them (X25519, then
/// P-256, then P-384). Named explicitly rather than taken from the process
/// default, so that another provider enabled elsewhere in the build changes
/// nothing here.
///
/// The order matters to a client: a rustls server takes the first group
/// the client offers that it supports, and a TLS 1.3 client sends a key
/// share for its first group only. ring's own default puts P-384 first,
/// whose key exchange costs several times X25519's: a load generator with
/// it would measure handshakes few real clients make.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    // rustls 0.23.48 deprecates its ring provider for lacking post-quantum
    // key exchange; the provider that has it, aws-lc-rs, needs cmake to
    // build, which this workspace does without. Servers and clients here
    // all use this one, so comparisons between them stay like for like.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    Arc::new(CryptoProvider {
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        ..ring
    })
}

/// Reads every certificate in the PEM file at `path` (a server's chain,
/// leaf first, or the certificates a client trusts).
///
/// Errors if the file cannot be read, holds a malformed certificate, or
/// holds none.
pub fn load_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate in this PEM file", path.display()),
        ));
    }
    Ok(certs)
}

/// Reads the first private key in the PEM file at `path`: PKCS#8
/// (`PRIVATE KEY`), RSA (`RSA PRIVATE KEY`) or EC (`EC PRIVATE KEY`).
///
/// Errors if the file cannot be read or holds no such key.
pub fn load_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e))
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> io::Error {
    let kind = match &e {
        rustls::pki_types::pem::Error::Io(e) => e.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, format!("{}: {e}", path.display()))
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, with its
/// key (ECDSA P-256), made with rcgen when the program starts.
#[derive(Debug)]
pub struct SelfSigned {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
    key_pem: String,
}

impl SelfSigned {
    /// Makes a fresh key pair and certificate, valid for the names
    /// `localhost` and the address `127.0.0.1`.
    ///
    /// Errors (an `io::Error` wrapping rcgen's) only if key generation or
    /// signing fails.
    pub fn localhost() -> io::Result<Self> {
        let made = rcgen::generate_simple_self_signed(["localhost".into(), "127.0.0.1".into()])
            .map_err(io::Error::other)?;
        Ok(Self {
            cert: made.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
            pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
        })
    }

    /// The certificate in PEM form: what a client passes as the
    /// certificate to trust (`loadgen --ca FILE`).
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The private key in PEM form (PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server configuration presenting this certificate (see
    /// [`server_config`]).
    pub fn server_config(&self) -> io::Result<Arc<ServerConfig>> {
        server_config(vec![self.cert.clone()], self.key.clone_key().into())
    }
}

/// A server configuration with rustls's safe defaults (TLS 1.3 and 1.2, no
/// client authentication) presenting `chain` (leaf first) signed by `key`.
///
/// Errors (`InvalidInput`) if rustls refuses the key or the chain, e.g.
/// a key that does not match the leaf certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<ServerConfig>> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(Arc::new(config))
}

/// The TLS options of an em example server: a certificate from files, or
/// a self-signed one made at start. Flatten it into the program's
/// arguments with `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerTlsArgs {
    /// Serve TLS with the certificate chain in this PEM file (with
    /// --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM: PKCS#8, RSA or EC) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve TLS with a self-signed certificate for localhost and
    /// 127.0.0.1, made at start (for a quick try; see --write-cert).
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// With --tls-self-signed: write the certificate's PEM to FILE, for a
    /// client to trust (`echo_client --tls --ca FILE`).
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    pub write_cert: Option<std::path::PathBuf>,
}

impl ServerTlsArgs {
    /// The em TLS options these arguments ask for, `None` for plain TCP.
    /// Writes the self-signed certificate's file, if asked, before it
    /// returns. Errors name the file or the step that failed.
    pub fn em_options(&self) -> io::Result<Option<em::TlsOptions>> {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            return Ok(Some(
                em::TlsOptions::new()
                    .cert_chain_file(cert)
                    .private_key_file(key),
            ));
        }
        if !self.tls_self_signed {
            return Ok(None);
        }
        let made = SelfSigned::localhost()?;
        if let Some(path) = &self.write_cert {
            std::fs::write(path, made.cert_pem())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        Ok(Some(
            em::TlsOptions::new()
                .cert_chain_pem(made.cert_pem())
                .private_key_pem(made.key_pem()),
        ))
    }
}
