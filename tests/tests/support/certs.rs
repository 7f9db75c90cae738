//! A test CA and a certificate for `localhost` it signed, made at run time
//! by rcgen and written as PEM files: for the TLS tests against em's own
//! clients and servers and against outside programs (openssl, curl,
//! Python).

use std::path::PathBuf;

use em::TlsOptions;

/// A CA, and a certificate for "localhost" it signed, as PEM files in a
/// fresh directory (removed on drop).
pub struct Certs {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA's certificate (what a client trusts).
    pub ca: PathBuf,
    /// The server's certificate, signed by the CA.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl Certs {
    /// Makes them in a fresh directory named after `name`, removed on drop.
    pub fn new(name: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("em-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "em interop CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &rcgen::Issuer::new(ca_params, &ca_key))
            .unwrap();
        let c = Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        std::fs::write(&c.ca, ca.pem()).unwrap();
        std::fs::write(&c.cert, cert.pem()).unwrap();
        std::fs::write(&c.key, key.serialize_pem()).unwrap();
        c
    }

    /// em's server options with this certificate and key.
    pub fn server_options(&self) -> TlsOptions {
        TlsOptions::new()
            .cert_chain_file(&self.cert)
            .private_key_file(&self.key)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
