//! `TlsOptions`: one builder for both sides of a TLS connection, turned
//! into a rustls `ServerConfig` or `ClientConfig` on first use and kept
//! (clones share it, and with it the session cache).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::verify::AnyCertificate;
use crate::error::{Error, Result};

/// A TLS protocol version, for [`TlsOptions::min_version`] and
/// [`TlsOptions::max_version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// Where PEM comes from.
#[derive(Clone)]
enum Pem {
    File(PathBuf),
    Memory(Vec<u8>),
}

impl Pem {
    fn certs(&self) -> Result<Vec<CertificateDer<'static>>> {
        let certs: std::result::Result<Vec<_>, _> = match self {
            Pem::File(p) => CertificateDer::pem_file_iter(p)
                .map_err(|e| config(format!("{}: {e}", p.display())))?
                .collect(),
            Pem::Memory(b) => CertificateDer::pem_slice_iter(b).collect(),
        };
        let certs = certs.map_err(|e| config(format!("{}: {e}", self.name())))?;
        if certs.is_empty() {
            return Err(config(format!("{}: no certificate in it", self.name())));
        }
        Ok(certs)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>> {
        match self {
            Pem::File(p) => PrivateKeyDer::from_pem_file(p),
            Pem::Memory(b) => PrivateKeyDer::from_pem_slice(b),
        }
        .map_err(|e| config(format!("{}: no usable private key: {e}", self.name())))
    }

    fn name(&self) -> String {
        match self {
            Pem::File(p) => p.display().to_string(),
            Pem::Memory(_) => "PEM in memory".into(),
        }
    }
}

fn config(what: String) -> Error {
    Error::tls_config(what)
}

/// How the peer's certificate is checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verify {
    /// Against the roots (a client also checks the host name); the default.
    Roots,
    /// By the handler's `ssl_verify_peer`.
    Callback,
    /// Not at all.
    Nothing,
}

#[derive(Clone)]
struct Spec {
    cert_chain: Option<Pem>,
    private_key: Option<Pem>,
    sni_certs: Vec<(String, Pem, Pem)>,
    roots: Vec<Pem>,
    verify: Verify,
    fail_if_no_peer_cert: bool,
    server_name: Option<String>,
    min_version: TlsVersion,
    max_version: TlsVersion,
    cipher_suites: Option<Vec<String>>,
    alpn: Vec<Vec<u8>>,
}

/// The configurations built from a `Spec`, once each.
#[derive(Default)]
struct Built {
    server: OnceLock<std::result::Result<Arc<ServerConfig>, Error>>,
    client: OnceLock<std::result::Result<Arc<ClientConfig>, Error>>,
}

/// TLS options for [`Conn::start_tls`](crate::Conn::start_tls), one builder
/// for servers and clients (EventMachine's `start_tls` option hash), with
/// safe defaults: a client verifies the server's certificate against
/// Mozilla's roots (`webpki-roots`) and checks its host name, and sends
/// that name as SNI; TLS 1.2 and 1.3; rustls's cipher suites.
///
/// The rustls configuration is built on the first `start_tls` and shared
/// by every clone of the options, with its session cache: build the
/// options once (in a server's factory, clone them into each handler).
/// Mistakes in them (a missing file, a server without a certificate, an
/// unknown cipher suite) are errors from `start_tls` that
/// `is_tls_config()`. Any thread may build them; `start_tls` runs on the
/// reactor thread.
///
/// ```
/// # use em_core as em;
/// use em::{TlsOptions, TlsVersion};
///
/// // A server, from PEM files (a chain and a PKCS#8, RSA or EC key).
/// let server = TlsOptions::new()
///     .cert_chain_file("/etc/em/cert.pem")
///     .private_key_file("/etc/em/key.pem")
///     .alpn_protocols(["http/1.1"]);
/// // A client that trusts one private CA, TLS 1.3 only.
/// let client = TlsOptions::new()
///     .root_certs_file("/etc/em/ca.pem")
///     .server_name("internal.example")
///     .min_version(TlsVersion::Tls13);
/// # let _ = (server, client);
/// ```
#[derive(Clone)]
pub struct TlsOptions {
    spec: Arc<Spec>,
    built: Arc<Built>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions::new()
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        f.debug_struct("TlsOptions")
            .field("cert_chain", &s.cert_chain.as_ref().map(Pem::name))
            .field("sni_certs", &s.sni_certs.len())
            .field("roots", &s.roots.len())
            .field("verify", &s.verify)
            .field("fail_if_no_peer_cert", &s.fail_if_no_peer_cert)
            .field("server_name", &s.server_name)
            .field("versions", &(s.min_version, s.max_version))
            .field("alpn", &s.alpn.len())
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    /// The defaults: verification on, TLS 1.2 and 1.3, no certificate.
    pub fn new() -> TlsOptions {
        TlsOptions {
            spec: Arc::new(Spec {
                cert_chain: None,
                private_key: None,
                sni_certs: Vec::new(),
                roots: Vec::new(),
                verify: Verify::Roots,
                fail_if_no_peer_cert: false,
                server_name: None,
                min_version: TlsVersion::Tls12,
                max_version: TlsVersion::Tls13,
                cipher_suites: None,
                alpn: Vec::new(),
            }),
            built: Arc::default(),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Spec)) -> TlsOptions {
        change(Arc::make_mut(&mut self.spec));
        self.built = Arc::default();
        self
    }

    /// The certificate chain (PEM, end-entity first) from a file
    /// (EventMachine's `cert_chain_file`). A server needs one; a client
    /// with one presents it when asked.
    pub fn cert_chain_file(self, path: impl Into<PathBuf>) -> TlsOptions {
        let pem = Pem::File(path.into());
        self.with(|s| s.cert_chain = Some(pem))
    }

    /// The certificate chain from PEM in memory (EventMachine's `cert`).
    pub fn cert_chain_pem(self, pem: impl Into<Vec<u8>>) -> TlsOptions {
        let pem = Pem::Memory(pem.into());
        self.with(|s| s.cert_chain = Some(pem))
    }

    /// The private key (PEM: PKCS#8, RSA or EC) from a file (EventMachine's
    /// `private_key_file`).
    pub fn private_key_file(self, path: impl Into<PathBuf>) -> TlsOptions {
        let pem = Pem::File(path.into());
        self.with(|s| s.private_key = Some(pem))
    }

    /// The private key from PEM in memory (EventMachine's `private_key`).
    pub fn private_key_pem(self, pem: impl Into<Vec<u8>>) -> TlsOptions {
        let pem = Pem::Memory(pem.into());
        self.with(|s| s.private_key = Some(pem))
    }

    /// A server: the chain and key (PEM in memory) to present to clients
    /// that ask for `name` by SNI; others get the main chain, or fail the
    /// handshake when there is none.
    pub fn sni_cert(
        self,
        name: impl Into<String>,
        chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> TlsOptions {
        let entry = (
            name.into().to_ascii_lowercase(),
            Pem::Memory(chain_pem.into()),
            Pem::Memory(key_pem.into()),
        );
        self.with(|s| s.sni_certs.push(entry))
    }

    /// Trust the certificates in this PEM file as roots, instead of
    /// Mozilla's (a client verifying servers; a server verifying client
    /// certificates). May be given several times.
    pub fn root_certs_file(self, path: impl Into<PathBuf>) -> TlsOptions {
        let pem = Pem::File(path.into());
        self.with(|s| s.roots.push(pem))
    }

    /// [`root_certs_file`](Self::root_certs_file) from PEM in memory.
    pub fn root_certs_pem(self, pem: impl Into<Vec<u8>>) -> TlsOptions {
        let pem = Pem::Memory(pem.into());
        self.with(|s| s.roots.push(pem))
    }

    /// The handler's [`Connection::ssl_verify_peer`](crate::Connection::ssl_verify_peer)
    /// decides whether the peer's certificate is accepted, instead of the
    /// roots: for pinning (EventMachine's `verify_peer`). The peer must
    /// still prove it holds the certificate's key. A server with it asks
    /// clients for a certificate. The callback runs on the reactor thread
    /// once the handshake is done, before `ssl_handshake_completed` and
    /// before any data moves; its default refuses.
    pub fn verify_peer(self, on: bool) -> TlsOptions {
        self.with(|s| {
            s.verify = if on { Verify::Callback } else { Verify::Roots };
        })
    }

    /// A server: a client that sends no certificate fails the handshake
    /// (EventMachine's `fail_if_no_peer_cert`). Needs
    /// [`verify_peer`](Self::verify_peer) or client roots
    /// ([`root_certs_file`](Self::root_certs_file)), which say how the
    /// certificate is checked.
    pub fn fail_if_no_peer_cert(self, on: bool) -> TlsOptions {
        self.with(|s| s.fail_if_no_peer_cert = on)
    }

    /// **Turns certificate verification off**: a client accepts any server
    /// and any host name. For tests against throw-away certificates only;
    /// a connection made with it can be intercepted by anyone on the path.
    pub fn danger_accept_invalid_certs(self) -> TlsOptions {
        self.with(|s| s.verify = Verify::Nothing)
    }

    /// A client: the server's name, checked against its certificate and
    /// sent as SNI (EventMachine's `sni_hostname`). Without it, the peer's
    /// IP address is checked and no SNI is sent.
    pub fn server_name(self, name: impl Into<String>) -> TlsOptions {
        let name = name.into();
        self.with(|s| s.server_name = Some(name))
    }

    /// The oldest protocol version allowed (TLS 1.2 by default).
    pub fn min_version(self, v: TlsVersion) -> TlsOptions {
        self.with(|s| s.min_version = v)
    }

    /// The newest protocol version allowed (TLS 1.3 by default).
    pub fn max_version(self, v: TlsVersion) -> TlsOptions {
        self.with(|s| s.max_version = v)
    }

    /// Only these cipher suites, by their IANA names as rustls spells them
    /// (`"TLS13_AES_128_GCM_SHA256"`,
    /// `"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"`…), in order of preference.
    pub fn cipher_suites<S: Into<String>>(self, names: impl IntoIterator<Item = S>) -> TlsOptions {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        self.with(|s| s.cipher_suites = Some(names))
    }

    /// The ALPN protocols offered (a client) or accepted (a server), in
    /// order of preference; a server that shares none with a client that
    /// offers some fails the handshake.
    pub fn alpn_protocols<P: AsRef<[u8]>>(
        self,
        protocols: impl IntoIterator<Item = P>,
    ) -> TlsOptions {
        let alpn: Vec<Vec<u8>> = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self.with(|s| s.alpn = alpn)
    }

    /// Builds the server side's rustls configuration now (it is kept for
    /// every `start_tls` with these options and their clones), so that a
    /// program finds a bad certificate or key at start rather than at its
    /// first connection. Any thread. Errors: `is_tls_config()`, as
    /// `start_tls`.
    pub fn check_server(&self) -> Result<()> {
        self.server_config().map(drop)
    }

    /// [`check_server`](Self::check_server) for the client side.
    pub fn check_client(&self) -> Result<()> {
        self.client_config().map(drop)
    }

    /// Whether the handler's `ssl_verify_peer` is asked.
    pub(crate) fn verifies_by_callback(&self) -> bool {
        self.spec.verify == Verify::Callback
    }

    /// The name a client checks, if one was given.
    pub(crate) fn name(&self) -> Option<&str> {
        self.spec.server_name.as_deref()
    }

    fn provider(&self) -> Result<Arc<CryptoProvider>> {
        // ring, which builds with a C compiler alone; rustls deprecates its
        // provider only because it lacks the post-quantum key exchange that
        // aws-lc-rs has (whose build needs more tooling).
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        // X25519 first, as browsers, curl and OpenSSL offer it: this
        // provider lists P-384 first, whose key exchange costs several
        // times more per handshake, and a TLS 1.3 client sends a key share
        // for its first group only.
        {
            use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
            provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
        }
        if let Some(names) = &self.spec.cipher_suites {
            let mut chosen = Vec::new();
            for name in names {
                let suite = provider
                    .cipher_suites
                    .iter()
                    .find(|s| s.suite().as_str() == Some(name.as_str()))
                    .ok_or_else(|| config(format!("unknown cipher suite {name:?}")))?;
                chosen.push(*suite);
            }
            provider.cipher_suites = chosen;
        }
        Ok(Arc::new(provider))
    }

    fn versions(&self) -> Result<Vec<&'static SupportedProtocolVersion>> {
        let (min, max) = (self.spec.min_version, self.spec.max_version);
        if min > max {
            return Err(config(format!(
                "min_version {min:?} is newer than max_version {max:?}"
            )));
        }
        let mut v = Vec::new();
        if min <= TlsVersion::Tls13 && TlsVersion::Tls13 <= max {
            v.push(&rustls::version::TLS13);
        }
        if min <= TlsVersion::Tls12 && TlsVersion::Tls12 <= max {
            v.push(&rustls::version::TLS12);
        }
        Ok(v)
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        if self.spec.roots.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(roots);
        }
        for pem in &self.spec.roots {
            for cert in pem.certs()? {
                roots
                    .add(cert)
                    .map_err(|e| config(format!("{}: not a usable root: {e}", pem.name())))?;
            }
        }
        Ok(roots)
    }

    fn certified_key(
        provider: &CryptoProvider,
        chain: &Pem,
        key: &Pem,
    ) -> Result<Arc<CertifiedKey>> {
        let certs = chain.certs()?;
        let key = provider
            .key_provider
            .load_private_key(key.key()?)
            .map_err(|e| config(format!("{}: {e}", key.name())))?;
        Ok(Arc::new(CertifiedKey::new(certs, key)))
    }

    /// The server configuration, built on first use.
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>> {
        self.built
            .server
            .get_or_init(|| self.build_server())
            .clone()
    }

    /// The client configuration, built on first use.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>> {
        self.built
            .client
            .get_or_init(|| self.build_client())
            .clone()
    }

    fn build_server(&self) -> Result<Arc<ServerConfig>> {
        let spec = &self.spec;
        let provider = self.provider()?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions()?)
            .map_err(|e| config(e.to_string()))?;
        let builder = match spec.verify {
            Verify::Callback => builder.with_client_cert_verifier(Arc::new(AnyCertificate {
                provider: provider.clone(),
                mandatory: spec.fail_if_no_peer_cert,
            })),
            _ if !spec.roots.is_empty() => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(self.roots()?),
                    provider.clone(),
                );
                let verifier = if spec.fail_if_no_peer_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                builder
                    .with_client_cert_verifier(verifier.build().map_err(|e| config(e.to_string()))?)
            }
            _ if spec.fail_if_no_peer_cert => return Err(config(
                "fail_if_no_peer_cert needs verify_peer(true) or client roots (root_certs_file)"
                    .into(),
            )),
            _ => builder.with_no_client_auth(),
        };
        let default = match (&spec.cert_chain, &spec.private_key) {
            (Some(chain), Some(key)) => Some(Self::certified_key(&provider, chain, key)?),
            (None, None) => None,
            (Some(_), None) => {
                return Err(config("a certificate chain without its private key".into()))
            }
            (None, Some(_)) => {
                return Err(config("a private key without its certificate chain".into()))
            }
        };
        let mut by_name = HashMap::new();
        for (name, chain, key) in &spec.sni_certs {
            by_name.insert(name.clone(), Self::certified_key(&provider, chain, key)?);
        }
        if default.is_none() && by_name.is_empty() {
            return Err(config(
                "a TLS server needs a certificate: cert_chain_file or cert_chain_pem, with its private key"
                    .into(),
            ));
        }
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver { by_name, default }));
        config.alpn_protocols = spec.alpn.clone();
        Ok(Arc::new(config))
    }

    fn build_client(&self) -> Result<Arc<ClientConfig>> {
        let spec = &self.spec;
        let provider = self.provider()?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions()?)
            .map_err(|e| config(e.to_string()))?;
        let builder = match spec.verify {
            Verify::Roots => builder.with_root_certificates(self.roots()?),
            Verify::Callback | Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                    provider: provider.clone(),
                    mandatory: false,
                })),
        };
        let mut config = match (&spec.cert_chain, &spec.private_key) {
            (Some(chain), Some(key)) => builder
                .with_client_auth_cert(chain.certs()?, key.key()?)
                .map_err(|e| config(e.to_string()))?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(config(
                    "a client certificate needs both its chain and its key".into(),
                ))
            }
        };
        config.alpn_protocols = spec.alpn.clone();
        Ok(Arc::new(config))
    }
}

/// A server's certificates: one per SNI name, and the default for the rest.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}
